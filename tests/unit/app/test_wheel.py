"""`pip install .` (not editable) gives a working Leakhub: the wheel holds every package
(leakhub with all subpackages, leakhub_worker, leakhub_host) and every template, static file
and catalog, and the app installed from it renders pages. Built offline from a copy of the
tree (pip wheel --no-build-isolation with the pinned setuptools), installed with --no-deps into
a fresh virtualenv that sees this one's dependencies. Takes ~30-60 s."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SOURCES = {"leakhub": "web/leakhub", "leakhub_worker": "worker",
           "leakhub_host": "host/leakhub_host"}
TREE = ["pyproject.toml", "setup.py", "README.md", "web", "worker", "host"]


def _run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _shipped(top: str, root: Path) -> set[str]:
    """What the wheel must hold of a package: every file but caches."""
    return {f"{top}/{p.relative_to(root).as_posix()}" for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in TREE:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        elif path.exists():
            shutil.copy2(path, src / name)
    dist = base / "dist"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1"}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--wheel-dir", dist, src], env=env, cwd=base)
    wheel = next(dist.glob("leakhub-*.whl"))
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv])
    # The new venv's base is this venv's interpreter's base, not this venv: its
    # site-packages (the pinned dependencies) come in through a .pth file.
    here = next(Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()
                and str(p).startswith(sys.prefix))
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "_leakhub_test_deps.pth").write_text(f"{here}\n")
    _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
          "--no-deps", "--no-index", wheel], env=env, cwd=base)
    return wheel, venv, site, src


def test_the_wheel_holds_every_package_template_and_static_file(installed):
    wheel, _venv, _site, src = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for top, folder in SOURCES.items():     # the copy of the tree the wheel was built from
        missing = sorted(_shipped(top, src / folder) - names)
        assert not missing, f"not in the wheel: {missing[:20]}"
    assert any(n.startswith("leakhub/templates/") and n.endswith(".html") for n in names)
    assert any(n.startswith("leakhub/static/") for n in names)


def test_the_installed_app_renders_pages(installed, tmp_path):
    _wheel, venv, site, _src = installed
    code = textwrap.dedent("""
        import sys
        from pathlib import Path
        import leakhub, leakhub_host, leakhub_worker
        from leakhub.app import create_app
        from leakhub.core.config import Config
        from leakhub.core.secrets import ensure_all
        for module in (leakhub, leakhub_host, leakhub_worker):
            assert Path(module.__file__).resolve().is_relative_to(Path(sys.argv[1])), module
        config = Config.from_env({"LEAKHUB_HOME": sys.argv[2], "LEAKHUB_TESTING": "1",
                                  "LEAKHUB_PUBLIC_URL": "https://leakhub.test",
                                  "KEYCLOAK_URL": "http://127.0.0.1:9/auth"})
        ensure_all(config.secrets_dir)
        app = create_app(config)
        client = app.test_client()
        health = client.get("/healthz")
        print("healthz", health.status_code)
        page = client.get("/", follow_redirects=True)
        print("page", page.status_code)
        print(page.get_data(as_text=True))
    """)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LEAKHUB_", "DATABASE_URL", "KEYCLOAK_", "PYTHON"))}
    proc = subprocess.run([venv / "bin" / "python", "-I", "-c", code, site.resolve(), home],
                          capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    assert "healthz 200" in lines, proc.stdout[:2000]
    assert "page 200" in lines, proc.stdout[:2000]
    html = proc.stdout
    assert "<html" in html and "</html>" in html          # a template, rendered
    assert "/static/" in html                              # with the packaged static files
