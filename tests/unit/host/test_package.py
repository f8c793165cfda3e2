"""The host tooling package (host/leakhub_host) stays what it claims: standard library only,
never the application, and scripts/stack.py a thin entry point to it."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import leakhub_host

REPO = Path(__file__).resolve().parents[3]
PACKAGE = Path(leakhub_host.__file__).resolve().parent
STDLIB = set(sys.stdlib_module_names)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) of every absolute import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def test_the_package_lives_in_the_repository():
    assert PACKAGE == REPO / "host" / "leakhub_host"


def test_host_tooling_imports_only_the_standard_library_and_itself():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) >= 8
    bad = [f"{path.relative_to(REPO)}:{line}: {name}"
           for path in [*modules, REPO / "scripts" / "stack.py"]
           for line, name in _imports(path)
           if name not in STDLIB and name != "leakhub_host"]
    assert not bad, "host tooling imports beyond the standard library: " + ", ".join(bad)


def test_host_tooling_runs_with_a_bare_python_without_the_app():
    """`python -I` (no site-packages, no PYTHONPATH) with only host/ on the path: every module
    imports, and nothing of the application (leakhub) is loaded on the way."""
    names = sorted(f"leakhub_host.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import importlib\n"
            f"for name in {names!r}: importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('leakhub', 'leakhub_worker', 'flask', 'peewee', 'requests')))")
    proc = subprocess.run([sys.executable, "-I", "-c", code, str(REPO / "host")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_stack_py_is_a_thin_entry_point():
    text = (REPO / "scripts" / "stack.py").read_text()
    assert len(text.splitlines()) < 30
    proc = subprocess.run([sys.executable, "-I", str(REPO / "scripts" / "stack.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "up" in proc.stdout and "down" in proc.stdout and "status" in proc.stdout


def test_nothing_loads_host_tooling_by_file_path():
    """The app and the tests import leakhub_host; none loads scripts/stack.py as a module."""
    offenders = []
    for root in ("web", "worker", "host", "tests", "bench"):
        for path in (REPO / root).rglob("*.py"):
            text = path.read_text(errors="replace")
            if path != Path(__file__).resolve() and "spec_from_file_location" in text \
                    and "stack.py" in text:
                offenders.append(str(path.relative_to(REPO)))
    assert not offenders
