"""The toolkit every `leakctl` command uses (issue 16): one error type, config and database
loading, the organization parameter and the `--json` option. A feature's cli.py imports
CliError, OrgParam, echo_json, json_option and load from here (and Organization from
orgs.models) at the top, then:

    @group.command("list")
    @click.option("--org", "org", required=True, type=OrgParam(Organization))
    @json_option
    def list_cmd(org, as_json):
        config = load()
        ...

Failures are printed once by the root `leakhub.cli.main` as `leakctl: error: <message>`:
a CliError (exit 1, or click's usage errors, exit 2) or any core.errors.LeakhubError (its
`exit_code`). core imports no feature: the organization model is handed to OrgParam.
"""
from __future__ import annotations

import contextlib
import json

import click

from .config import get_config
from .db import init_database
from .validation import ValidationError

_DATABASE_FOR = "leakhub.database_for"


class CliError(click.ClickException):
    """Raise for a failure the operator must read; printed as `leakctl: error: ...`."""


@contextlib.contextmanager
def service_errors(*readable: type[Exception]):
    """A service's ValidationError → one line naming each field as its option
    (`--field-name: message`); the exception types in `readable` → their message."""
    try:
        yield
    except ValidationError as exc:
        raise CliError("; ".join(f"--{k.replace('_', '-')}: {v}" if k else v
                                 for k, v in exc.errors.items())) from None
    except readable as exc:
        raise CliError(str(exc)) from None


def load(*, db: bool = True):
    """Config (and the database handle) for a command. Within one leakctl invocation the
    database is opened once, whether a parameter (OrgParam) or the command asks first."""
    config = get_config()
    if db:
        ctx = click.get_current_context(silent=True)
        if ctx is None or ctx.meta.get(_DATABASE_FOR) is not config:
            init_database(config)
            if ctx is not None:
                ctx.meta[_DATABASE_FOR] = config
    return config


class OrgParam(click.ParamType):
    """`--org SLUG` → the Organization row (the model is passed in: core imports no
    feature). An unknown slug is one clear error (exit 1), the same for every command."""

    name = "slug"

    def __init__(self, model):
        self.model = model

    def convert(self, value, param, ctx):
        if isinstance(value, self.model):
            return value
        load()
        org = self.model.get_or_none(self.model.slug == value)
        if org is None:
            raise CliError(f"organization {value!r} does not exist (see `leakctl org list`)")
        return org


class _OrgLastParser:
    """The option parser of a command, handing click the parameters in invocation order with
    the organization lookups (OrgParam) last: plain input errors ("--leaks -5") are reported
    before a database lookup that may fail for another reason (an unknown slug)."""

    def __init__(self, parser):
        self._parser = parser

    def __getattr__(self, name):
        return getattr(self._parser, name)

    def parse_args(self, args):
        opts, rest, order = self._parser.parse_args(args=args)
        order.sort(key=lambda param: isinstance(getattr(param, "type", None), OrgParam))
        return opts, rest, order


class Command(click.Command):
    def make_parser(self, ctx):
        return _OrgLastParser(super().make_parser(ctx))


class Group(click.Group):
    """leakctl's command groups: their commands check plain input before `--org` (above);
    subgroups are Groups too."""

    command_class = Command
    group_class = type

    def make_parser(self, ctx):
        return _OrgLastParser(super().make_parser(ctx))


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def echo_json(data, **kwargs) -> None:
    """One JSON document on stdout (keyword arguments go to json.dumps)."""
    click.echo(json.dumps(data, **kwargs))
