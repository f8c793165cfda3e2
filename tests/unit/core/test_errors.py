"""One error hierarchy (issue 16): feature errors subclass core.errors, and each surface maps
them once — pages (core.web), leakctl exit codes (leakhub.cli.main); core imports no feature;
feature CLIs take their toolkit from core.clikit, never from the root cli."""
from __future__ import annotations

import ast
from pathlib import Path

import click
import pytest

from leakhub import cli
from leakhub.audit.writer import ConflictError
from leakhub.core.clikit import CliError, OrgParam
from leakhub.core.config import ConfigError, set_config
from leakhub.core.errors import Conflict, Forbidden, Invalid, LeakhubError, NotFound, Unavailable
from leakhub.core.validation import ValidationError
from leakhub.devices.service import DeviceError
from leakhub.identity.keycloak_admin import KeycloakConflict, KeycloakNotFound, KeycloakUnreachable
from leakhub.orgs.models import Organization
from leakhub.orgs.service import OrgError
from leakhub.users.service import UserError

WEB = Path(__file__).resolve().parents[3] / "web" / "leakhub"


def test_statuses_and_exit_codes():
    assert [(c.status, c.exit_code) for c in (Invalid, Conflict, Forbidden, NotFound,
                                                Unavailable)] == \
        [(422, 1), (409, 1), (403, 1), (404, 1), (503, 1)]
    err = Invalid("too long", "name")
    assert err.errors == {"name": "too long"} and str(err) == "name: too long"


@pytest.mark.parametrize("cls,base", [
    (ValidationError, Invalid), (UserError, Invalid), (OrgError, Invalid),
    (DeviceError, Invalid), (ConflictError, Conflict), (KeycloakConflict, Conflict),
    (KeycloakNotFound, NotFound), (KeycloakUnreachable, Unavailable),
    (ConfigError, LeakhubError)])
def test_feature_errors_join_the_hierarchy(cls, base):
    assert issubclass(cls, base)


def test_keycloak_errors_keep_keycloaks_status():
    err = KeycloakUnreachable("Keycloak did not answer", status=502)
    assert err.status == 502 and type(err).status == 503


def test_a_leakhub_error_is_its_page_never_a_stack_trace(app):
    def refuse():
        raise Conflict("the survey is closed")

    app.add_url_rule("/_test/conflict", "test_conflict", refuse)
    resp = app.test_client().get("/_test/conflict")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 409
    assert "the survey is closed" in body and "Traceback" not in body


def test_leakctl_maps_a_leakhub_error_once(app, config, capsys, monkeypatch):
    set_config(config)

    @click.command("boom")
    def boom():
        raise Unavailable("Keycloak is down")

    monkeypatch.setitem(cli.cli.commands, "boom", boom)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["boom"])
    assert exit_.value.code == 1
    assert capsys.readouterr().err.strip() == "leakctl: error: Keycloak is down"


def test_org_param_names_an_unknown_slug(app, config, org):
    set_config(config)
    param = OrgParam(Organization)
    assert param.convert(org.slug, None, None) == org
    with pytest.raises(CliError, match="organization 'nope' does not exist"):
        param.convert("nope", None, None)


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            yield node.level, node.module or "", [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield 0, alias.name, []


def test_core_imports_no_feature():
    for path in (WEB / "core").rglob("*.py"):
        depth = len(path.relative_to(WEB / "core").parts)  # 1: core/x.py, 2: core/pkg/x.py
        for level, module, _names in _imports(path):
            absolute = module.startswith("leakhub") and not module.startswith("leakhub.core")
            above_core = level > depth
            assert not absolute and not above_core, f"{path}: imports {'.' * level}{module}"


def test_feature_clis_do_not_import_the_root_cli():
    for path in WEB.glob("*/cli.py"):
        for level, module, names in _imports(path):
            root_cli = module == "leakhub.cli" or (level == 2 and (
                module == "cli" or (module == "" and "cli" in names)))
            assert not root_cli, f"{path} imports the root cli"
