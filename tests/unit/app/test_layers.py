"""The declared layers (issue 16; docs/architecture.md), enforced.

core -> models -> authz / audit writer / security events -> feature services -> views, API,
CLI -> app (app.py, cli.py, the worker); an import only ever points down. The contracts are
import-linter's, in pyproject.toml ([tool.importlinter]); this file runs `lint-imports` and adds
what import-linter does not express: no import cycle between modules, views/API/CLI modules
imported only by other surfaces and the app, and function-level imports of Leakhub's own
modules only at the places allow-listed below, each with its reason."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[3]
SOURCES = ("web/leakhub", "worker", "host/leakhub_host")
OWN = ("leakhub", "leakhub_worker", "leakhub_host")

# (file, enclosing function, imported module) -> why the import cannot be at the top.
ALLOWED_FUNCTION_LEVEL_IMPORTS = {
    ("web/leakhub/ops/views.py", "job_last_runs", "leakhub_worker.schedule"):
        "the System page lists the worker's job table; the worker package is the top layer "
        "(it imports the features' jobs), so the web only reads it when the page is drawn "
        "and shows the recorded runs alone when the table cannot be loaded",
}


def _function_level_imports():
    """(file, function, module, line) of every import of Leakhub's own modules inside a
    function or class body."""
    found = []
    for base in SOURCES:
        for path in sorted((ROOT / base).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            tree = ast.parse(path.read_text(encoding="utf-8"), rel)

            def visit(node, scope, rel=rel):
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        visit(child, child.name)
                        continue
                    if scope is not None and isinstance(child, (ast.Import, ast.ImportFrom)):
                        if isinstance(child, ast.ImportFrom):
                            names = [("." * child.level) + (child.module or "")]
                        else:
                            names = [alias.name for alias in child.names]
                        for name in names:
                            if name.startswith(".") or name.split(".")[0] in OWN:
                                found.append((rel, scope, name, child.lineno))
                    visit(child, scope)

            visit(tree, None)
    return found


def test_the_import_contracts_hold():
    """lint-imports (import-linter, pinned in requirements) checks every contract in
    pyproject.toml: core imports no feature; models, the authz/audit/security-event layer and
    the feature services import nothing above them; views, API and CLIs no app wiring; inside
    each feature views|cli -> service -> models; the host package nothing of the app."""
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout


def test_function_level_imports_only_where_allowed():
    found = _function_level_imports()
    unexpected = [f"{file}:{line} in {func}(): {module}" for file, func, module, line in found
                  if (file, func, module) not in ALLOWED_FUNCTION_LEVEL_IMPORTS]
    assert not unexpected, ("import these at the top of the module (fix the layering where "
                            "that makes a cycle) or allow-list them with a reason:\n"
                            + "\n".join(unexpected))
    stale = set(ALLOWED_FUNCTION_LEVEL_IMPORTS) - {(f, fn, m) for f, fn, m, _l in found}
    assert not stale, f"allow-list entries that no longer occur: {sorted(stale)}"
    assert all(reason.strip() for reason in ALLOWED_FUNCTION_LEVEL_IMPORTS.values())


def _graph():
    return grimp.build_graph(*OWN, include_external_packages=False, cache_dir=None)


def _is_surface(module: str) -> bool:
    parts = module.split(".")
    return (module in ("leakhub.app", "leakhub.cli") or parts[0] == "leakhub_worker"
            or module == "leakhub.api" or module.startswith("leakhub.api.")
            or parts[-1] in ("views", "cli"))


def test_no_import_cycle_between_modules():
    graph = _graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def connect(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph.find_modules_directly_imported_by(module):
            if target not in index:
                connect(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for module in sorted(graph.modules):
            if module not in index:
                connect(module)
    finally:
        sys.setrecursionlimit(limit)
    assert not cycles, cycles


def test_views_api_and_cli_are_imported_only_by_surfaces_and_the_app():
    graph = _graph()
    upward = [f"{module} -> {target}" for module in sorted(graph.modules)
              if module.split(".")[0] == "leakhub" and not _is_surface(module)
              for target in sorted(graph.find_modules_directly_imported_by(module))
              if _is_surface(target)]
    assert not upward, upward
