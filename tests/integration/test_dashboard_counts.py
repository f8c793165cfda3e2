"""leak_daily on PostgreSQL (migration 0011): the statement-level triggers keep the per-day
counts the dashboard reads equal to counting the leaks, on every write path; concurrent writers
of one organization neither deadlock on those rows nor lose a count; an admin's dashboard
(per-day counts) equals a grant-limited reader's (per-day counts of a site granted as a whole,
counted leaks of a partial grant) to the cent.

The app runs in-process on its own database of the session stack's PostgreSQL."""
from __future__ import annotations

import datetime as dt
import shutil
import threading
from decimal import Decimal as D

import pytest

from support.reporting_data import leak_daily_mismatches, make_tree, new_leak
from support.stackctl import scratch_database

pytestmark = pytest.mark.integration


@pytest.fixture
def app(stack, tmp_path):
    from leakhub.app import create_app
    from leakhub.core.config import Config, set_config
    from leakhub.core.secrets import ensure_all

    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    shutil.copy(stack.home / "secrets" / "postgres-leakhub-password", secrets)
    with scratch_database(stack, f"leak_daily_{id(tmp_path) % 100000}") as name:
        config = Config.from_env({
            "LEAKHUB_HOME": str(tmp_path), "LEAKHUB_PUBLIC_URL": "https://leakhub.test",
            "KEYCLOAK_URL": "http://127.0.0.1:9/auth", "LEAKHUB_TESTING": "1",
            "DATABASE_URL": f"postgresql://leakhub@127.0.0.1:{stack.ports['postgres']}/{name}"})
        ensure_all(config.secrets_dir)
        app = create_app(config)
        try:
            with app.test_request_context():  # services' messages are translated per request
                yield app
        finally:
            from leakhub.core.db import database

            if not database.is_closed():
                database.close()
            set_config(None)


@pytest.fixture
def world(app):
    from leakhub import authz
    from leakhub.identity.models import User
    from leakhub.orgs.models import Organization

    org = Organization.create(slug="acme", name="ACME", oidc_client_secret="x")
    admin = User.create(organization=org, sub="admin", email="admin@acme.test", role="admin")
    actor = authz.Actor(organization=org, kind="user", user=admin)
    return {"org": org, "actor": actor, "tree": make_tree(actor)}


def test_every_write_path_keeps_the_counts_on_postgresql(world):
    from leakhub.core.db import database
    from leakhub.imports import service as imports
    from leakhub.leaks import service
    from leakhub.locations.models import Location

    actor, tree = world["actor"], world["tree"]
    at = dt.datetime(2025, 5, 6, 7)
    leaks = [new_leak(actor, tree["area" if i % 3 else "site2"], found_at=at + dt.timedelta(
        hours=5 * i), rate_lpm=D("1.125") * (i + 1), component=("hose", "valve")[i % 2])
        for i in range(12)]
    assert not leak_daily_mismatches()
    service.update_leak(actor, leaks[0], expected_version=leaks[0].version,
                        description="only text")
    service.update_leak(actor, leaks[1], expected_version=leaks[1].version,
                        rate_lpm=D("99.999"), location=tree["site2"].id)
    service.change_status(actor, leaks[2], "repaired", repaired_at=dt.date(2025, 6, 1))
    assert service.bulk_change_status(actor, [lk.id for lk in leaks[3:9]], "repair_planned") == 6
    assert not leak_daily_mismatches()
    csv = ("Tag;Location;Date;Rate l/min;Component\r\n"
           + "".join(f"9{i:02d};BER/H1/A1;0{1 + i % 5}.03.2025;{i},5;Schlauch\r\n"
                     for i in range(40))).encode("cp1252")
    assert imports.run_import(actor, csv, "leaks.csv").committed
    assert not leak_daily_mismatches()
    # One statement moving many leaks between rows (here by hand; the app moves a location's
    # leaks when its path changes).
    Location.update(path=f"{tree['site2'].path}{tree['area'].id}/").where(
        Location.id == tree["area"].id).execute()
    database.execute_sql("UPDATE leak SET found_at = found_at + interval '1 day', "
                         "rate_lpm = rate_lpm + 1 WHERE tag LIKE '9%%'")
    assert not leak_daily_mismatches()
    for leak in leaks[:5]:
        service.delete_leak(actor, leak)
    database.execute_sql("DELETE FROM leak WHERE tag LIKE '90%%'")
    assert not leak_daily_mismatches()


def test_concurrent_writers_neither_deadlock_nor_lose_counts(world):
    """Four writers move their own leaks through the workflow at once with bulk status
    changes: many leaks (and so many per-day count rows) in one transaction, an audit entry
    after each. Each writer's leaks were found on three days, and each writer starts on
    another day: without a common first lock, writer A would hold day 1's counts and wait for
    the audit chain while writer B holds the chain and waits for day 1 — a deadlock, which
    PostgreSQL resolves by failing one of them."""
    from leakhub import authz
    from leakhub.core.db import database
    from leakhub.leaks import service

    actor, tree = world["actor"], world["tree"]
    writers, per_writer, rounds = 4, 6, 6
    day = lambda i: dt.datetime(2025, 9, 1 + (i // writers + i % writers) % 3, 8)  # noqa: E731
    ids = [new_leak(actor, tree["area"], found_at=day(i), rate_lpm=D("2"), component="hose").id
           for i in range(writers * per_writer)]
    errors: list = []

    def write(k: int):
        me = authz.Actor(organization=world["org"], kind="user", user=actor.user)
        try:
            with database.connection_context():
                for r in range(rounds):
                    target = ("repair_planned", "deferred", "open")[r % 3]
                    # deferring needs a reason (the one status rule for form, API, import)
                    note = "Stillstand abwarten" if target == "deferred" else ""
                    assert service.bulk_change_status(me, ids[k::writers], target,
                                                      note=note) == per_writer
        except Exception as exc:  # noqa: BLE001 (collected and reported below)
            errors.append(f"writer {k}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer hangs"
    assert not errors, errors
    assert not leak_daily_mismatches()
    from leakhub.leaks.models import Leak
    assert Leak.select().where(Leak.status == "open").count() == len(ids)


def test_admin_and_grant_limited_reader_see_the_same_dashboard(world, make_reader):
    from leakhub.dashboard import service as dashboard
    from leakhub.leaks import service

    actor, tree = world["actor"], world["tree"]
    for i in range(30):
        leak = new_leak(actor, tree[("area", "hall", "site2")[i % 3]],
                        found_at=dt.datetime(2024 + i % 3, 1 + i % 12, 1 + i % 27, 6),
                        rate_lpm=D("0.333") * (i + 1), component=("hose", "valve", "flange")[i % 3])
        if i % 4 == 0:
            service.change_status(actor, leak, "repaired",
                                  repaired_at=dt.date(2024 + i % 3, 1 + i % 12, 28))
    # MUC granted as a whole (its per-day counts), BER's hall only (its leaks one by one).
    reader = make_reader(world, [tree["hall"], tree["site2"]])
    assert dashboard.counts_every_leak(actor) and not dashboard.counts_every_leak(reader)
    today = dt.date(2026, 12, 31)
    mine, theirs = dashboard.compute(actor, today=today), dashboard.compute(reader, today=today)
    assert mine.total == theirs.total == 30
    assert (mine.open, mine.fixed, mine.trend, mine.by_component) == (
        theirs.open, theirs.fixed, theirs.trend, theirs.by_component)
    # 24 months up to December 2026: the 20 leaks found and 5 of the 8 repaired in 2025-2026.
    assert sum(f for _m, f, _r in mine.trend) == 20 and sum(r for _m, _f, r in mine.trend) == 5


@pytest.fixture
def make_reader():
    def _make(world, sites):
        from leakhub import authz
        from leakhub.authz.models import Grant
        from leakhub.identity.models import User

        org = world["org"]
        org.security_mode = 3
        org.save()
        user = User.create(organization=org, sub="reader", email="reader@acme.test",
                           role="viewer")
        for site in sites:
            Grant.create(organization=org, user=user, location=site, level="view")
        return authz.Actor(organization=org, kind="user", user=user)
    return _make
