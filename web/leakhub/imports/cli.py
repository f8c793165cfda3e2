"""`leakctl import leaks --org SLUG FILE [--mapping JSON | --preset NAME] [--dry-run]`: the web
import's service."""
from __future__ import annotations

import json
from pathlib import Path

import click
from flask import Flask
from flask_babel import Babel

from ..authz import Actor
from ..core.clikit import CliError, Group, OrgParam, json_option, load
from ..core.validation import ValidationError
from ..orgs.models import Organization
from . import mapping, service


@click.group("import", cls=Group)
def import_group():
    """Import data from files."""


@import_group.command("leaks")
@click.option("--org", "org", required=True, type=OrgParam(Organization),
              help="Organization slug.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mapping", "mapping_arg", default=None, metavar="JSON|FILE",
              help='Overrides of the suggested column mapping, as a JSON object '
                   '{"Header in the file": "field"} or a path to a file holding one. Only the '
                   'columns named change: "field" maps that column (and takes the field away '
                   'from any other column), "ignore" or null drops it; every other column '
                   'keeps its suggestion (shown in the output line "mapping:"). Fields: '
                   'tag, location (a path SITE/BUILDING/AREA), site, building, area, survey, '
                   'found_at, rate_lpm, pressure_bar, component, status, description, … '
                   '(all of them in the error for an unknown one).')
@click.option("--preset", "preset", default=None, metavar="NAME",
              help="Use the organization's saved column mapping NAME (saved in the web "
                   "import's review step; not together with --mapping).")
@click.option("--dry-run", is_flag=True, help="Validate and report; write nothing.")
@click.option("--update-existing", is_flag=True,
              help="Update leaks whose tag exists with other data (default: conflict).")
@click.option("--create-locations", is_flag=True, help="Create missing locations.")
@json_option
def import_leaks(org, file, mapping_arg, preset, dry_run, update_existing, create_locations,
                 as_json):
    """Import leaks from a CSV or XLSX file (all or nothing).

    \b
    Example: leakctl import leaks --org acme begehung.csv --dry-run \\
               --mapping '{"Standort": "location", "Bemerkung": "ignore"}'
    """
    load()
    if preset is not None and mapping_arg:
        raise CliError("--preset and --mapping: choose one")
    data = file.read_bytes()
    column_map = None
    if mapping_arg:
        text = mapping_arg
        if not mapping_arg.lstrip().startswith("{"):
            p = Path(mapping_arg)
            if not p.is_file():
                raise CliError(f"--mapping: neither JSON nor a file: {mapping_arg}")
            text = p.read_text(encoding="utf-8")
        try:
            by_name = json.loads(text)
            if not isinstance(by_name, dict):
                raise ValueError("expected an object")
        except ValueError as exc:
            raise CliError(f"--mapping: not a JSON object ({exc})") from None
        try:
            _fmt, headers = service.headers_of(data, file.name)
        except service.formats.FormatError as exc:
            raise CliError(f"{file.name}: {service.format_error(exc)}") from None
        try:
            column_map = mapping.with_overrides(headers, by_name)
        except (ValueError, KeyError) as exc:
            raise CliError(f"--mapping: {exc.args[0] if exc.args else exc}") from None
    actor = Actor.system(org, label="leakctl")
    app = Flask("leakctl")  # gettext needs an app context; messages stay English
    Babel(app)
    with app.app_context():
        if preset is not None:
            try:
                _fmt, headers = service.headers_of(data, file.name)
            except service.formats.FormatError as exc:
                raise CliError(f"{file.name}: {service.format_error(exc)}") from None
            try:
                column_map = service.preset_column_map(actor, preset.strip(), headers)
            except ValidationError as exc:
                raise CliError("--preset: " + str(next(iter(exc.errors.values())))) from None
        result = service.run_import(
            actor, data, file.name, column_map=column_map, dry_run=dry_run,
            options=service.Options(update_existing=update_existing,
                                    create_locations=create_locations))
        errors = [str(e) for e in result.errors]
        warnings = [str(w) for w in result.warnings]
        conflicts = [f"row {c.row}, tag {c.tag}: " + "; ".join(
            f"{col}: {old} → {new}" for col, old, new in c.columns) for c in result.conflicts]
    if as_json:
        click.echo(json.dumps({**result.summary(), "errors": errors, "conflicts": conflicts,
                               "warnings": warnings,
                               "mapping": {result.headers[i]: f
                                           for i, f in result.mapping.items()}},
                              ensure_ascii=False, indent=2))
    else:
        click.echo("mapping: " + ", ".join(f"{result.headers[i]} → {f}"
                                           for i, f in sorted(result.mapping.items())))
        for line in warnings:
            click.echo(f"warning: {line}", err=True)
        for line in errors + conflicts:
            click.echo(line, err=True)
        s = result.summary()
        state = "imported" if result.committed else ("checked (dry run)" if dry_run and result.ok
                                                     else "nothing imported")
        click.echo(f"{s['rows']} rows: {s['new']} new, {s['changed']} changed, "
                   f"{s['unchanged']} unchanged, {s['conflicts']} conflicts, "
                   f"{s['errors']} errors — {state}")
        if result.missing_locations:
            click.echo(("created" if result.committed else "missing") + " locations: "
                       + ", ".join(result.missing_locations))
    if not result.ok:
        raise SystemExit(1)
