"""Which packages the distribution holds; everything else is in pyproject.toml.

- leakhub (web/leakhub) with every subpackage, found by setuptools (folders without an
  __init__.py count when they hold Python code; template and static folders are package data),
- leakhub_host (host/leakhub_host), the host tooling,
- leakhub_worker, whose folder is worker/ (pyproject's `find` cannot rename a folder).
"""
from pathlib import Path

from setuptools import find_namespace_packages, setup

ROOT = Path(__file__).resolve().parent
DIRS = {"leakhub": "web/leakhub", "leakhub_host": "host/leakhub_host", "leakhub_worker": "worker"}


def packages(top: str) -> list[str]:
    where = Path(DIRS[top]).parent
    found = find_namespace_packages(str(ROOT / where), include=[top, f"{top}.*"])
    return [name for name in found
            if any((ROOT / where / name.replace(".", "/")).glob("*.py"))]


setup(
    packages=[*packages("leakhub"), *packages("leakhub_host"), "leakhub_worker"],
    package_dir=DIRS,
)
