"""The CLI toolkit's commands check plain input before they look an organization up."""
from __future__ import annotations

from click.testing import CliRunner

from leakhub.cli import cli


def test_a_plain_input_error_is_reported_before_the_organization_lookup():
    # --org first on the command line; the database is never asked for the slug.
    result = CliRunner().invoke(cli, ["demo", "seed", "--org", "nope", "--leaks", "-5"])
    assert result.exit_code == 2
    assert "--leaks" in result.output and "nope" not in result.output
