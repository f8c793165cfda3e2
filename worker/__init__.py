"""Leakhub's scheduler process: the job table and its wiring. The work itself is done by
service functions in the web package, the same ones the web UI and leakctl call."""
