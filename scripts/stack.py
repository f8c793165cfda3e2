#!/usr/bin/env python3
"""Leakhub's native stack: `scripts/stack.py up|down|status|env` (`--help` for the options).

The supervisor lives in the host tooling package (host/leakhub_host/supervisor.py); this entry
point puts this tree's copy of it first on the path, so it runs with the project's virtualenv
or with a bare python3 (standard library only), and always as the code of this tree.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "host"))

from leakhub_host.supervisor import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
