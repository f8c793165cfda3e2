"""`leakctl secrets`, `leakctl keys`, `leakctl migrate`: the commands that need nothing but
core."""
from __future__ import annotations

from pathlib import Path

import click

from . import crypto, keys, migrations
from .clikit import CliError, Group, echo_json, json_option, load
from .secrets import ensure_all


@click.group("secrets", cls=Group)
def secrets_group():
    """Secrets generated on this machine (files, mode 0600)."""


@secrets_group.command("init")
def secrets_init():
    """Generate every missing secret; never overwrites an existing one."""
    config = load(db=False)
    created = ensure_all(config.secrets_dir, config=config)
    click.echo(f"secrets in {config.secrets_dir}: "
               + (f"created {', '.join(created)}" if created else "all present"))


@click.group("keys", cls=Group)
def keys_group():
    """Encryption at rest: the data key of uploads and secret files (docs/encryption.md)."""


def _require_enabled(config):
    if not crypto.enabled(config):
        raise CliError("encryption at rest is off (LEAKHUB_DATA_KEY_FILE=off)")


def _bar(label):
    state = {"bar": None}

    def step(n, total):
        if state["bar"] is None:
            state["bar"] = click.progressbar(length=total, label=label,
                                             file=click.get_text_stream("stderr"))
            state["bar"].__enter__()
        state["bar"].update(n)
        if state["bar"].pos >= total:
            state["bar"].__exit__(None, None, None)
    return step


@keys_group.command("status")
@json_option
def keys_status(as_json):
    """The key file, the key ring, and how many files each data key (or none) protects."""
    config = load(db=False)
    info = keys.describe(config)
    if as_json:
        echo_json(info)
    elif not info["enabled"]:
        click.echo("encryption at rest: off (LEAKHUB_DATA_KEY_FILE=off)")
    else:
        click.echo(f"key file: {info['key_file']}")
        click.echo(f"key ring: {info['keyring']}")
        if "error" in info:
            click.echo(f"error: {info['error']}")
        else:
            click.echo(f"master key {info['master']}"
                       f"{' (passphrase)' if info['passphrase'] else ''}; active data key "
                       f"{info['active']}" + (f"; rotation unfinished, retiring "
                                              f"{', '.join(info['retiring'])}"
                                              if info["retiring"] else ""))
            for kid, n in sorted(info["files"].items()):
                click.echo(f"  {kid:12} {n} file(s)")
    if "error" in info or info.get("retiring") or info.get("files", {}).get("plaintext"):
        raise SystemExit(1)


@keys_group.command("rotate")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def keys_rotate(yes):
    """New data key; re-encrypt every upload and secret file with it, then drop the old key.
    Resumable: after a crash, run it again to finish the same rotation."""
    config = load(db=False)
    _require_enabled(config)
    if not yes:
        click.confirm("Re-encrypt every stored file with a new data key?", abort=True)
    out = keys.rotate(config, progress=_bar("re-encrypting"))
    click.echo(f"{'resumed; ' if out.resumed else ''}active data key {out.active}; "
               f"{out.reencrypted} file(s) re-encrypted; dropped "
               f"{', '.join(out.dropped) or 'nothing'}")


@keys_group.command("encrypt-existing")
def keys_encrypt_existing():
    """Encrypt the uploads and secret files still stored as plaintext (from before
    encryption at rest). Safe to run again."""
    config = load(db=False)
    _require_enabled(config)
    n = keys.encrypt_existing(config, progress=_bar("encrypting"))
    click.echo(f"{n} plaintext file(s) encrypted")


@keys_group.command("rewrap")
@click.option("--new-key-file", required=True, type=click.Path(dir_okay=False),
              help="The new master key file (generated, mode 0600, when it does not exist; or "
                   "a file holding a passphrase of at least 16 characters).")
def keys_rewrap(new_key_file):
    """Protect the key ring with a new master key; afterwards set LEAKHUB_DATA_KEY_FILE to
    the new file (or move it over the old one) and restart. No data file is rewritten."""
    config = load(db=False)
    _require_enabled(config)
    path = Path(new_key_file)
    if not path.is_absolute():
        raise CliError("--new-key-file must be an absolute path")
    if path.resolve() == Path(config.data_key_file).resolve():
        raise CliError("--new-key-file is the current key file; give a new one")
    created = keys.rewrap(config, path)
    click.echo(f"key ring now opens with {path}" + (" (generated)" if created else "")
               + f"; set LEAKHUB_DATA_KEY_FILE={path} and restart web and worker")


@click.command("migrate")
@click.option("--status", is_flag=True, help="Only show the schema version and what is pending.")
def migrate_cmd(status):
    """Apply pending schema migrations (under a database-wide lock)."""
    config = load()
    if status:
        click.echo(f"schema version {migrations.current_version()} of {migrations.head()}; "
                   f"pending: {[m.version for m in migrations.pending()] or 'none'}")
        return
    applied = migrations.migrate(config.data_dir, log=click.echo)
    click.echo(f"schema at version {migrations.head()}"
               + (f" ({len(applied)} applied)" if applied else " (nothing to do)"))
