"""`leakctl status`."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
from cryptography import x509

from ..core.clikit import CliError, Group, echo_json, json_option, load
from ..jobs.models import JobRun
from . import tls
from .deployments import DeploymentError, parse_entries, recent, record
from .status import all_checks, check_jobs, check_worker
from .volumes import check_encryption, check_volumes


@click.group("status", invoke_without_command=True, cls=Group)
@json_option
@click.pass_context
def status_group(ctx, as_json):
    """Health of the installation; exits 1 when something needs attention."""
    if ctx.invoked_subcommand is not None:
        return

    config = load()
    # encryption at rest and where each data directory lives (docs/encryption.md)
    checks = all_checks(config) + [check_encryption(config)] + check_volumes(config)
    ok = all(c.ok for c in checks)
    if as_json:
        echo_json({"ok": ok, "checks": [c.as_dict() for c in checks]})
    else:
        for c in checks:
            click.echo(f"{'ok  ' if c.ok else 'FAIL'} {c.name:16} {c.detail}")
    if not ok:
        raise SystemExit(1)


@status_group.command("worker")
@click.option("--since", metavar="TIME",
              help="Also require a heartbeat at or after this ISO 8601 time (the updater's "
                   "health gate: the new worker has run, not just the old one recently).")
def worker_cmd(since):
    """Exit 0 if the worker's heartbeat is recent and no job's last run failed (the worker
    container's health check). With --since, only job runs since then count."""
    load()
    check = check_worker()
    after = None
    if since:
        try:
            after = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise CliError(f"--since: not an ISO 8601 time: {since!r}") from None
        if after.tzinfo is not None:
            after = after.astimezone(dt.UTC).replace(tzinfo=None)
    if after is not None and check.ok:
        fresh = (JobRun.select().where((JobRun.job == "heartbeat") & (JobRun.status == "ok")
                                       & (JobRun.started_at >= after)).exists())
        if not fresh:
            click.echo(f"worker: no heartbeat since {since} yet")
            raise SystemExit(1)
    jobs = check_jobs(after)
    click.echo(f"worker: {check.detail}" + ("" if jobs.ok else f"; {jobs.detail}"))
    if not (check.ok and jobs.ok):
        raise SystemExit(1)


@click.group("tls", cls=Group)
def tls_group():
    """TLS certificates as Caddy serves them."""


@tls_group.command("export-root")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Write the PEM here instead of stdout.")
def export_root(out):
    """Print the internal CA's root certificate and its SHA-256 fingerprint, to install on
    client machines (browsers, tablets) as a trusted root."""
    config = load(db=False)
    path = tls.root_ca_path(config)
    if not path.exists():
        raise CliError(f"no internal CA root at {path} (is Caddy running in internal-CA mode?)")
    pem = path.read_text()
    fp = tls.fingerprint(x509.load_pem_x509_certificate(pem.encode()))
    if out:
        Path(out).write_text(pem)
        click.echo(f"root certificate written to {out}")
    else:
        click.echo(pem, nl=False)
    click.echo(f"SHA-256 fingerprint: {fp}", err=bool(not out))


@tls_group.command("check")
@click.option("--cert", type=click.Path(dir_okay=False), help="Certificate chain (PEM).")
@click.option("--key", type=click.Path(dir_okay=False), help="Private key (PEM).")
@json_option
def check_cmd(cert, key, as_json):
    """Check the served (or given) certificate: key matches, chain order, expiry."""
    config = load(db=False)
    report = tls.inspect(Path(cert), Path(key) if key else None) if cert else tls.check(config)
    if report is None:
        click.echo("ACME mode: Caddy obtains and renews the certificate itself")
        return
    if as_json:
        echo_json({"path": report.path, "subject": report.subject,
                   "not_after": report.not_after.isoformat() if report.not_after else None,
                   "days_left": report.days_left, "sha256": report.sha256,
                   "problems": report.problems, "warnings": report.warnings})
    else:
        click.echo(f"{report.path}: {report.subject or '?'}, valid until "
                   f"{report.not_after:%Y-%m-%d} ({report.days_left} days)" if report.not_after
                   else f"{report.path}")
        for p in report.problems:
            click.echo(f"  PROBLEM: {p}")
        for w in report.warnings:
            click.echo(f"  WARNING: {w}")
    if not report.ok:
        raise SystemExit(1)


@click.group("deployments", invoke_without_command=True, cls=Group)
@json_option
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.pass_context
def deployments_group(ctx, as_json, limit):
    """The deployment log: every update attempt, newest first (who, when, from which version
    to which, result, duration)."""
    if ctx.invoked_subcommand is not None:
        return
    load()
    rows = recent(limit)
    if as_json:
        echo_json([r.as_dict() for r in rows])
        return
    if not rows:
        click.echo("no deployments recorded")
        return
    for r in rows:
        click.echo(f"{r.started_at:%Y-%m-%d %H:%M:%S}Z  {r.result:<11}  "
                   f"{r.from_version or '?'} -> {r.to_version or '?'}  "
                   f"{r.duration_ms / 1000:.1f} s  {r.who}")
        if r.summary:
            click.echo(f"    {r.summary}")


@deployments_group.command("record")
@click.argument("source", type=click.File("r"), default="-")
def deployments_record(source):
    """Store deployment entries written by the updater (JSON object, array or lines; from
    SOURCE or standard input). Entries already recorded (same uid) are skipped."""
    config = load()
    try:
        entries = parse_entries(source.read())
        created = sum(record(config, entry)[1] for entry in entries)
    except DeploymentError as exc:
        raise CliError(f"deployment entry: {exc}") from None
    click.echo(f"{created} deployment(s) recorded, {len(entries) - created} already known")
