"""`leakctl backup`: create, list, verify, restore, prune, export-key, rehost."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..core.clikit import CliError, Group, echo_json, json_option, load
from ..core.files import atomic_write
from ..core.times import utc_iso
from . import pitr
from .create import create_backup
from .inventory import reconcile, records
from .keys import export_identity
from .restore import rehost, restore_backup
from .rotation import rotate
from .service import BackupError, Progress, operator_org
from .verify import verify_backup


def _progress():
    """A click progress bar on a terminal, nothing otherwise (cron, pipes, tests)."""
    if not sys.stdout.isatty():
        return None, lambda: None
    state = {}

    def start(total, label):
        if "bar" in state:
            state["bar"].__exit__(None, None, None)
        state["bar"] = click.progressbar(length=max(total, 1), label=label, show_pos=False,
                                         show_percent=True, show_eta=True)
        state["bar"].__enter__()

    def update(n):
        if "bar" in state:
            state["bar"].update(n)

    def finish():
        if "bar" in state:
            state.pop("bar").__exit__(None, None, None)

    return Progress(start=start, update=update), finish


def _fail(exc):
    raise CliError(str(exc))


def _mib(n):
    return f"{(n or 0) / 2**20:.1f} MiB"


@click.group("backup", cls=Group)
def backup_group():
    """Encrypted backups: create, list, verify, restore, prune, export the key.

    Archives are written to LEAKHUB_BACKUP_DIR (and copied to LEAKHUB_BACKUP_COPY_DIR), encrypted
    with age to the appliance key (secret `backup-identity`) and LEAKHUB_BACKUP_RECIPIENTS.
    """


@backup_group.command("create")
@click.option("--kind", type=click.Choice(["manual", "scheduled", "pre-update"]),
              default="manual", show_default=True, help="Recorded in the manifest and file name.")
@json_option
def create_cmd(kind, as_json):
    """Write one encrypted archive of databases, uploads, secrets and configuration."""
    config = load()
    progress, finish = _progress()
    try:
        created = create_backup(config, kind=kind, label="leakctl", progress=progress,
                                log_fn=None if as_json else (lambda m: click.echo(m, err=True)))
    except BackupError as exc:
        _fail(exc)
    finally:
        finish()
    if as_json:
        echo_json({"file": created.name, "path": str(created.path),
                   "size": created.size, "sha256": created.sha256,
                   "seconds": round(created.seconds, 2), "warnings": created.warnings})
        return
    click.echo(f"backup written: {created.path} ({_mib(created.size)}, {created.seconds:.1f} s)")
    click.echo(f"sha256 {created.sha256}")
    for w in created.warnings:
        click.echo(f"warning: {w}", err=True)


@backup_group.command("list")
@json_option
def list_cmd(as_json):
    """Backups in the backup directory, newest first, with their verification status."""
    config = load()
    reconcile(config)
    rows = records()
    if as_json:
        echo_json([{
            "file": r.file_name, "created_at": utc_iso(r.created_at), "kind": r.kind,
            "size": r.size, "sha256": r.sha256, "verify_status": r.verify_status,
            "verified_at": utc_iso(r.verified_at),
            "copied": r.copied, "summary": r.summary} for r in rows])
        return
    if not rows:
        click.echo(f"no backups in {config.backup_dir}")
        return
    for r in rows:
        status = r.verify_status or "not verified"
        click.echo(f"{r.file_name}  {_mib(r.size):>11}  {r.kind:<10}  {status}"
                   + ("  (copied)" if r.copied else ""))


@backup_group.command("verify")
@click.argument("backup", required=False)
@click.option("--identity", "identities", multiple=True, type=click.Path(dir_okay=False),
              help="Extra age identity file(s) to decrypt with.")
@json_option
def verify_cmd(backup, identities, as_json):
    """Decrypt BACKUP (a file name in the backup directory or a path; default: the newest),
    check every checksum and trial-restore it into scratch databases."""
    config = load()
    if not backup:
        reconcile(config)
        rows = records()
        if not rows:
            raise CliError(f"no backups in {config.backup_dir}")
        backup = rows[0].file_name
    progress, finish = _progress()
    try:
        result = verify_backup(config, backup, identity_files=identities, progress=progress,
                               log_fn=None if as_json else (lambda m: click.echo(m, err=True)))
    except BackupError as exc:
        _fail(exc)
    finally:
        finish()
    if as_json:
        echo_json({"file": result.name, "ok": result.ok, "message": result.message,
                   "checks": result.checks})
    else:
        for check in result.checks:
            click.echo(f"ok: {check}")
        click.echo(f"{result.name}: " + ("verified" if result.ok else f"FAILED: {result.message}"))
    if not result.ok:
        raise SystemExit(1)


@backup_group.command("restore")
@click.argument("backup", required=False)
@click.option("--to-time", "to_time", metavar='"YYYY-MM-DD HH:MM[:SS]"',
              help="Point-in-time recovery instead of an archive: the PostgreSQL cluster "
                   "(Leakhub and Keycloak) as it was at this time (pgBackRest).")
@click.option("--tz", "tz", metavar="ZONE",
              help="Time zone of --to-time (default: the operator organization's, else UTC).")
@click.option("--identity", "identities", multiple=True, type=click.Path(dir_okay=False),
              help="Age identity file(s) to decrypt with (e.g. the exported appliance key, "
                   "needed on a fresh installation).")
@click.option("--stop-services", is_flag=True,
              help="Stop the native stack first if it is running (it stays stopped; start it "
                   "again with scripts/stack.py up).")
@click.option("--allow-unsigned", is_flag=True,
              help="Accept an archive whose manifest MAC cannot be checked with the given "
                   "identities (e.g. decrypted with a customer key only).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def restore_cmd(backup, to_time, tz, identities, stop_services, allow_unsigned, yes, as_json):
    """Replace this installation's data with BACKUP, or with its state at --to-time.

    Decrypts and checks the whole archive first (wrong key, damage, a newer version: refused,
    nothing changed); refuses while Leakhub runs; then restores the databases (migrating an
    older schema forward), uploads and secrets. Works on a fresh installation too: the native
    stack's PostgreSQL is started for the restore when it is not running.

    With --to-time (and no BACKUP): point-in-time recovery of the PostgreSQL cluster from the
    pgBackRest repository (WAL archive); uploads and secrets stay as they are.
    """
    config = load()
    if to_time is not None or tz is not None:
        if backup is not None:
            raise CliError("give either BACKUP or --to-time, not both")
        if to_time is None:
            raise CliError("--tz needs --to-time")
        _restore_to_time(config, to_time, tz, stop_services, yes, as_json)
        return
    if backup is None:
        raise CliError("name a BACKUP archive (see `leakctl backup list`) or give --to-time")

    def confirm(manifest):
        if yes:
            return True
        orgs = ", ".join(o["slug"] for o in manifest.get("organizations") or []) or "-"
        click.echo(f"Backup of {manifest.get('created_at')} ({manifest.get('kind')}), Leakhub "
                   f"{manifest.get('leakhub_version')}, schema {manifest.get('schema_version')}, "
                   f"organizations: {orgs}")
        try:
            return click.confirm("Replace ALL data of this installation with this backup?",
                                 default=False)
        except click.exceptions.Abort:       # no answer (no terminal): no
            click.echo("", err=True)
            return False

    say = None if as_json else (lambda m: click.echo(m, err=True))
    try:
        report = restore_backup(config, backup, identity_files=identities,
                                stop_services=stop_services, allow_unsigned=allow_unsigned,
                                confirm=confirm, log_fn=say)
    except BackupError as exc:
        _fail(exc)
    if as_json:
        echo_json(report)
        return
    click.echo(f"restored {report['file']} (made {report.get('created_at')}); schema migrated "
               f"forward by {len(report.get('migrations_applied') or [])} migration(s); "
               f"{report.get('uploads', 0)} upload(s); secrets: "
               f"{', '.join(report.get('secrets') or []) or '-'}")
    if report.get("stopped_stack"):
        click.echo(f"start Leakhub again: scripts/stack.py up --home {report['stopped_stack']}")
    else:
        click.echo("start Leakhub again (setup then points Keycloak's clients at this "
                   "installation's URL)")


def _restore_to_time(config, to_time, tz, stop_services, yes, as_json):
    tz = _default_tz(config, tz)
    try:
        target = pitr.parse_target(to_time, tz)
    except BackupError as exc:
        _fail(exc)

    def confirm(window):
        if yes:
            return True
        click.echo(f"Restorable from {window.earliest:%Y-%m-%d %H:%M:%S} to "
                   f"{window.latest:%Y-%m-%d %H:%M:%S} UTC; target {to_time} {tz} = "
                   f"{target:%Y-%m-%d %H:%M:%S} UTC")
        try:
            return click.confirm("Replace ALL data of both databases (Leakhub, Keycloak) with "
                                 "their state at that time?", default=False)
        except click.exceptions.Abort:
            click.echo("", err=True)
            return False

    say = None if as_json else (lambda m: click.echo(m, err=True))
    try:
        report = pitr.restore_to_time(config, target, stop_services=stop_services,
                                      confirm=confirm, log_fn=say)
    except BackupError as exc:
        _fail(exc)
    if as_json:
        echo_json(report)
        return
    click.echo(f"restored the databases to {target:%Y-%m-%d %H:%M:%S} UTC (recovery "
               f"{report['recovery_seconds']} s); schema migrated forward by "
               f"{len(report.get('migrations_applied') or [])} migration(s)")
    home = report.get("stopped_stack")
    click.echo("start Leakhub again: "
               + (f"scripts/stack.py up --home {home}" if home else "scripts/stack.py up"))


@backup_group.command("pitr-base")
@json_option
def pitr_base_cmd(as_json):
    """A pgBackRest base backup now (point-in-time recovery; the worker takes one daily)."""
    config = load()
    try:
        message = pitr.base_backup(config, log_fn=None if as_json else
                                   (lambda m: click.echo(m, err=True)))
        window = pitr.current_window(config)
    except BackupError as exc:
        _fail(exc)
    if as_json:
        echo_json({"message": message, "window": window.as_dict()})
    else:
        click.echo(message)


def _default_tz(config, tz):
    if tz is not None:
        return tz
    try:
        org = operator_org(config)
    except Exception:       # no database yet
        org = None
    return org.timezone if org is not None else "UTC"


@backup_group.command("pitr-check", hidden=True)
@click.option("--to-time", "to_time", required=True)
@click.option("--tz", default=None)
def pitr_check_cmd(to_time, tz):
    """(Docker Compose host, scripts/leakctl) Check a restore to a time; change nothing."""
    config = load()
    try:
        echo_json(pitr.check_request(config, to_time, _default_tz(config, tz)))
    except BackupError as exc:
        _fail(exc)


@backup_group.command("pitr-restored", hidden=True)
@click.option("--to-time", "to_time", required=True, help="The target, ISO UTC.")
def pitr_restored_cmd(to_time):
    """(Docker Compose host, scripts/leakctl) After a restore to a time: migrate, audit."""
    config = load()
    try:
        echo_json(pitr.record_restore(config, to_time,
                                      log_fn=lambda m: click.echo(m, err=True)))
    except BackupError as exc:
        _fail(exc)


@backup_group.command("prune")
@click.option("--keep-daily", type=click.IntRange(0), help="Override LEAKHUB_BACKUP_KEEP_DAILY.")
@click.option("--keep-weekly", type=click.IntRange(0), help="Override LEAKHUB_BACKUP_KEEP_WEEKLY.")
@click.option("--keep-monthly", type=click.IntRange(0),
              help="Override LEAKHUB_BACKUP_KEEP_MONTHLY.")
@click.option("--dry-run", is_flag=True, help="Only show what would be deleted.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def prune_cmd(keep_daily, keep_weekly, keep_monthly, dry_run, yes):
    """Delete the backups that rotation does not keep (never the newest verified one)."""
    config = load()
    kw = dict(keep_daily=keep_daily, keep_weekly=keep_weekly, keep_monthly=keep_monthly)
    try:
        keep, delete = rotate(config, dry_run=True, **kw)
        for item in keep:
            click.echo(f"keep    {item.name}")
        for item in delete:
            click.echo(f"delete  {item.name}")
        if dry_run or not delete:
            click.echo("nothing deleted" + (" (dry run)" if dry_run and delete else ""))
            return
        if not yes and not click.confirm(f"Delete {len(delete)} backup(s)?", default=False):
            click.echo("nothing deleted")
            return
        keep, delete = rotate(config, **kw)
        click.echo(f"deleted {len(delete)} backup(s)")
    except BackupError as exc:
        _fail(exc)


@backup_group.command("export-key")
@click.option("--out", type=click.Path(dir_okay=False), help="Write to this file (mode 0600).")
@click.option("--public", is_flag=True, help="Only the public key(s) (age1...).")
def export_key_cmd(out, public):
    """Print the appliance's backup identity, to keep offline: without it (or a key of
    LEAKHUB_BACKUP_RECIPIENTS) no backup can be decrypted after a loss of this machine."""
    config = load(db=False)
    try:
        text = export_identity(config, public=public)
    except BackupError as exc:
        _fail(exc)
    if out:
        atomic_write(Path(out), text.encode(), mode=0o644 if public else 0o600)
        click.echo(f"written to {out}", err=True)
    else:
        click.echo(text, nl=False)


@backup_group.command("rehost")
def rehost_cmd():
    """Point every organization's Keycloak client at this installation's URLs (after a
    restore onto another host; `leakctl setup` does it by itself after a restore)."""
    config = load()
    click.echo(rehost(config))
