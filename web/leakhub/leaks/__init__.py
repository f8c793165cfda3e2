"""The leak register: leaks, their status workflow and history, tags, lists."""
