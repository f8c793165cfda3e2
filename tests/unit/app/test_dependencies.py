"""Every third-party module the app and the worker import is a declared dependency in
pyproject.toml: the image installs only those (a module that the dev virtualenv happened to
have — pypdfium2 — once made `web` exit with ModuleNotFoundError under Compose)."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _imported_top_level_modules() -> set[str]:
    found = set()
    for root in ("web/leakhub", "worker"):
        for path in (ROOT / root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names
            and not m.startswith(("leakhub", "_"))}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(requirement: str) -> str:
    return _norm(re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0))


def _declared_with_their_dependencies() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [_name(r) for r in project["dependencies"]]
    seen: set[str] = set()
    while todo:
        dist = todo.pop()
        if dist in seen:
            continue
        seen.add(dist)
        try:
            reqs = requires(dist) or []
        except PackageNotFoundError:  # a requirement whose marker excludes this platform
            continue
        for req in reqs:
            if "extra ==" not in req:
                todo.append(_name(req))
    return seen


def test_every_imported_module_is_a_declared_dependency():
    dists = packages_distributions()
    installed = _declared_with_their_dependencies()
    declared = {_name(r) for r in tomllib.loads(
        (ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    missing, only_transitive = [], []
    for module in sorted(_imported_top_level_modules()):
        names = {_norm(d) for d in dists.get(module, [])}
        assert names, f"{module} is imported but not installed"
        if not names & installed:
            missing.append(module)
        elif not names & declared:
            only_transitive.append(module)
    assert not missing, f"imported but not in pyproject's dependencies: {missing}"
    # Imported directly but arriving only through another package: declare it (its version
    # could change or vanish with the other package's next release).
    allowed_transitive = {"werkzeug", "markupsafe", "babel", "playhouse"}
    assert set(only_transitive) <= allowed_transitive, (
        f"imported directly, declared only through another package: "
        f"{sorted(set(only_transitive) - allowed_transitive)}")
