#!/usr/bin/env python3
"""Backup and restore throughput against the bare pipeline (pg_dump -Fc + tar + age).

    .venv/bin/python bench/bench_backup.py [--leaks 2000] [--photos-mb 50] [--runs 1]
    .venv/bin/python bench/bench_backup.py --leaks 100000 --photos-mb 1000   # the full run

Starts a throw-away PostgreSQL of the native stack (scripts/stack.py's start_postgres, in a
temporary home), seeds one organization with N leaks (`leakctl demo seed`'s code) and M MB of
random JPEG-like photo files, then times

- `leakhub backup`: backups.create_backup (pg_dump of Leakhub's and Keycloak's
  databases in one snapshot each, tar with per-file SHA-256, age encryption, fsync, rename,
  record) and backups.restore_backup (decrypt + check into staging, pg_restore into a
  new database, migrations, swap, uploads and secrets);
- the bare pipeline on the same data: `pg_dump -Fc` to a file, GNU tar of the dump and the
  uploads piped into pyrage.encrypt_io (the age CLI is not installed; pyrage is the same
  library in-process), fsync; restore: pyrage.decrypt_io piped into `tar -x`, pg_restore into a
  new database with the same --jobs.

Prints wall times, MB/s (of the data going into the archive) and the ratio to the bare
pipeline (target: ≤ 1.3). Timings only, no assertions.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "web"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_photos(root: Path, megabytes: int) -> int:
    """Random files with a JPEG header, stored like the app stores photos (sha256 names)."""
    total, target = 0, megabytes * 2**20
    rnd = os.urandom(4 * 2**20)
    i = 0
    while total < target:
        size = min(target - total, 200 * 1024 + (i * 7919) % (1800 * 1024))   # 0.2–2 MB
        start = (i * 104729) % (len(rnd) - size) if size < len(rnd) else 0
        data = b"\xff\xd8\xff\xe0" + i.to_bytes(8, "big") + rnd[start:start + size - 12]
        key = hashlib.sha256(data).hexdigest()
        path = root / key[:2] / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        total += len(data)
        i += 1
    return i


def drop_caches_hint():
    try:
        os.sync()
    except OSError:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leaks", type=int, default=2000)
    ap.add_argument("--photos-mb", type=int, default=50)
    ap.add_argument("--runs", type=int, default=1, help="repetitions (the best is reported)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home")
    ap.add_argument("--verbose", action="store_true", help="print the steps with timestamps")
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="leakhub-bench-backup-"))
    home.chmod(0o755)
    port = free_port()
    env = {
        "LEAKHUB_HOME": str(home), "LEAKHUB_PUBLIC_URL": "https://leakhub.bench",
        "LEAKHUB_INTERNAL_URL": "http://127.0.0.1:9", "KEYCLOAK_URL": "http://127.0.0.1:9/auth",
        "DATABASE_URL": f"postgresql://leakhub@127.0.0.1:{port}/leakhub",
        "LEAKHUB_ORG_SLUG": "bench", "LEAKHUB_LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    from leakhub.backups import native
    from leakhub.backups.create import create_backup
    from leakhub.backups.databases import pg_targets, pg_tool
    from leakhub.backups.keys import local_identities
    from leakhub.backups.restore import restore_backup
    from leakhub.backups.settings import get_settings
    from leakhub.core import logging as app_logging
    from leakhub.core import migrations
    from leakhub.core.config import get_config
    from leakhub.core.db import database, init_database
    from leakhub.core.secrets import ensure_all

    config = get_config()
    app_logging.configure("bench", "WARNING")
    ensure_all(config.secrets_dir)
    pg = native.NativePostgres(config, home)
    print(f"PostgreSQL: starting a throw-away server in {home}", flush=True)
    pg.start()
    try:
        init_database(config)
        database.connect()
        migrations.migrate(config.data_dir, log=lambda m: None)
        from leakhub.demo.seed import seed
        from leakhub.orgs.models import Organization

        org = Organization.create(slug="bench", name="Bench GmbH", oidc_client_secret="x")
        t = time.perf_counter()
        seed(org, leaks=args.leaks, sites=8, rng_seed=42)
        print(f"seeded {args.leaks} leaks in {time.perf_counter() - t:.1f} s", flush=True)
        uploads = Path(config.data_dir) / "uploads"
        n_photos = make_photos(uploads / "photos" / str(org.id), args.photos_mb)
        database.close()
        settings = get_settings(config)
        targets = pg_targets(config, settings)
        app = targets["app"]

        def mb(n):
            return n / 2**20

        # ---------------------------------------------------------------- ours
        best_create, created = None, None
        for _ in range(args.runs):
            for p in Path(config.backup_dir).glob("*.tar.age"):
                p.unlink()
            drop_caches_hint()
            t = time.perf_counter()
            t0 = time.perf_counter()
            created = create_backup(config, kind="manual", log_fn=(
                (lambda m, t0=t0: print(f"  {time.perf_counter() - t0:7.2f}s {m}", flush=True))
                if args.verbose else None))
            dt_ = time.perf_counter() - t
            best_create = dt_ if best_create is None else min(best_create, dt_)
        payload = sum(f["size"] for f in created.manifest["files"].values())
        dump_size = created.manifest["files"]["db/leakhub.pgdump"]["size"]
        best_restore = None
        for _ in range(args.runs):
            drop_caches_hint()
            t = time.perf_counter()
            t0 = time.perf_counter()
            restore_backup(config, str(created.path), log_fn=(
                (lambda m, t0=t0: print(f"  {time.perf_counter() - t0:7.2f}s {m}", flush=True))
                if args.verbose else None))
            dt_ = time.perf_counter() - t
            best_restore = dt_ if best_restore is None else min(best_restore, dt_)

        # ---------------------------------------------------------------- bare pipeline
        import pyrage

        from leakhub.backups.keys import recipients

        keys = recipients(config)
        idents = local_identities(config)
        work = home / "bare"
        best_bare, best_bare_restore = None, None
        for _ in range(args.runs):
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            drop_caches_hint()
            t = time.perf_counter()
            subprocess.run([pg_tool("pg_dump", settings), "--format=custom", "--file",
                            str(work / "leakhub.pgdump")], env=app.env(), check=True)
            tar = subprocess.Popen(["tar", "-cf", "-", "-C", str(work), "leakhub.pgdump",
                                    "-C", str(config.data_dir), "uploads"],
                                   stdout=subprocess.PIPE)
            with open(work / "bare.tar.age", "wb") as out:
                pyrage.encrypt_io(tar.stdout, out, keys)
                out.flush()
                os.fsync(out.fileno())
            assert tar.wait() == 0
            dt_ = time.perf_counter() - t
            best_bare = dt_ if best_bare is None else min(best_bare, dt_)
            bare_size = (work / "bare.tar.age").stat().st_size

            drop_caches_hint()
            out_dir = work / "out"
            out_dir.mkdir()
            t = time.perf_counter()
            untar = subprocess.Popen(["tar", "-xf", "-", "-C", str(out_dir)],
                                     stdin=subprocess.PIPE)
            with open(work / "bare.tar.age", "rb") as src:
                pyrage.decrypt_io(src, untar.stdin, idents)
            untar.stdin.close()
            assert untar.wait() == 0
            from leakhub.backups import databases

            scratch = databases.scratch_name("leakhub_bare")
            databases.create_database(targets["super"], scratch, app.user)
            jobs = max(1, min(4, os.cpu_count() or 1))
            subprocess.run([pg_tool("pg_restore", settings), "--no-owner", "--no-privileges",
                            f"--jobs={jobs}", "--dbname", scratch,
                            str(out_dir / "leakhub.pgdump")], env=app.env(scratch), check=True)
            dt_ = time.perf_counter() - t
            databases.drop_database(targets["super"], scratch)
            best_bare_restore = dt_ if best_bare_restore is None else min(best_bare_restore, dt_)

        print()
        print(f"data: {args.leaks} leaks (pg_dump -Fc {mb(dump_size):.1f} MiB), {n_photos} photo "
              f"files {mb(payload - dump_size):.0f} MiB; archive {mb(created.size):.1f} MiB; "
              f"{os.cpu_count()} CPU(s); best of {args.runs}")
        rows = [("backup", best_create, best_bare), ("restore", best_restore, best_bare_restore)]
        print(f"{'':10}{'leakhub':>12}{'MB/s':>9}{'bare':>12}{'MB/s':>9}{'ratio':>8}")
        for label, ours, bare in rows:
            print(f"{label:10}{ours:>11.2f}s{mb(payload) / ours:>9.1f}{bare:>11.2f}s"
                  f"{mb(payload) / bare:>9.1f}{ours / bare:>8.2f}")
        print(f"(bare archive {mb(bare_size):.1f} MiB. leakhub backup also dumps Keycloak's "
              "database in a snapshot, hashes every file, writes and MACs the manifest, "
              "fsyncs and records; its restore also checks every checksum and the MAC before "
              "it changes anything, restores Keycloak's database, runs migrations and swaps "
              "databases and directories. Verification is a separate job, not timed here.)")
    finally:
        try:
            if not database.is_closed():
                database.close()
        except Exception:
            pass
        pg.stop()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"home kept: {home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
