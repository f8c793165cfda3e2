"""leak_daily (migration 0011): the per-day counts the dashboard reads are kept right by the
database on every write path — service, import, plain SQL, bulk status changes, moves,
deletes, location path changes — and the migration's backfill counts what is there."""
import datetime as dt
from decimal import Decimal as D

from leakhub.core.db import database, is_postgres
from leakhub.core.migrations import m0011_leak_daily
from leakhub.dashboard.models import LeakDaily, LeakRepairedDaily
from leakhub.imports import service as imports
from leakhub.leaks import service
from leakhub.leaks.models import Leak
from leakhub.locations.models import Location

from support.reporting_data import leak_daily_mismatches, make_tree, new_leak


def kept(org, **where):
    query = LeakDaily.select().where(LeakDaily.organization == org)
    for name, value in where.items():
        query = query.where(getattr(LeakDaily, name) == value)
    return [(r.site_id, r.status, r.component, r.found_day, r.n, r.rate_mlpm) for r in query]


def test_every_write_path_keeps_the_counts(actor, tree, org, other_org, make_actor):
    at = dt.datetime(2024, 3, 1, 9)
    a = new_leak(actor, tree["area"], found_at=at, rate_lpm=D("10.125"), component="hose")
    b = new_leak(actor, tree["area"], found_at=at.replace(hour=17), rate_lpm=D("2"),
                 component="hose")
    assert kept(org) == [(tree["site"].id, "open", "hose", dt.date(2024, 3, 1), 2, 12125)]
    assert not leak_daily_mismatches()

    # Edits of uncounted fields change nothing; counted ones move the leak between rows.
    a = service.update_leak(actor, a, expected_version=a.version, description="hinter Presse 3")
    assert kept(org) == [(tree["site"].id, "open", "hose", dt.date(2024, 3, 1), 2, 12125)]
    a = service.update_leak(actor, a, expected_version=a.version, rate_lpm=D("0.5"),
                            location=tree["site2"].id, found_at=dt.datetime(2024, 3, 2, 8))
    assert not leak_daily_mismatches()
    assert kept(org, site_id=tree["site2"].id) == [
        (tree["site2"].id, "open", "hose", dt.date(2024, 3, 2), 1, 500)]
    service.change_status(actor, b, "repaired", repaired_at=dt.date(2024, 3, 5))
    service.bulk_change_status(actor, [a.id], "repair_planned")
    assert not leak_daily_mismatches()
    assert {r[1] for r in kept(org)} == {"repaired", "repair_planned"}

    # Another organization's leaks are counted on their own.
    stranger = make_actor("admin", organization=other_org)
    far = new_leak(stranger, make_tree(stranger)["area"], found_at=at, rate_lpm=D("7"))
    assert len(kept(other_org)) == 1 and not leak_daily_mismatches()

    # Import: plain INSERTs in bulk.
    csv = ("Tag;Location;Date;Rate l/min;Component\r\n"
           "501;BER/H1/A1;01.03.2024;3,5;Schlauch\r\n"
           "502;BER/H1/A1;01.03.2024;1;Schlauch\r\n"
           "503;MUC;04.03.2024;8;Ventil\r\n").encode("cp1252")
    assert imports.run_import(actor, csv, "leaks.csv").committed
    assert not leak_daily_mismatches()
    # (Berlin's midnight of 1 March is 29 February in UTC, the day the leak is counted on.)
    assert kept(org, status="open", component="hose") == [
        (tree["site"].id, "open", "hose", dt.date(2024, 2, 29), 2, 4500)]

    # A location whose path is changed (by hand: the app does not move subtrees).
    Location.update(path=f"{tree['site2'].path}{tree['area'].id}/").where(
        Location.id == tree["area"].id).execute()
    assert not leak_daily_mismatches()
    # A location that names no site: counted under site 0.
    Location.update(path="broken").where(Location.id == tree["area"].id).execute()
    assert not leak_daily_mismatches()
    assert kept(org, site_id=0)

    # Deletes, down to no leak at all: no rows left with a count of 0.
    service.delete_leak(actor, b)
    service.delete_leak(stranger, far)
    assert not leak_daily_mismatches() and kept(other_org) == []
    for leak in Leak.select().where(Leak.organization == org):
        service.delete_leak(actor, leak)
    assert kept(org) == [] and LeakDaily.select().count() == 0


def test_plain_sql_writes_are_counted(actor, tree, org):
    leak = new_leak(actor, tree["area"], rate_lpm=D("4"))
    database.execute_sql("UPDATE leak SET rate_lpm = rate_lpm * 3, status = 'deferred'")
    assert not leak_daily_mismatches()
    assert kept(org)[0][4:] == (1, 12000)
    database.execute_sql(f"DELETE FROM leak WHERE id = {int(leak.id)}")
    assert kept(org) == []


def test_the_migration_backfill_counts_existing_leaks(actor, tree):
    for i in range(6):
        new_leak(actor, tree["area" if i % 2 else "site2"],
                 found_at=dt.datetime(2024, 1 + i % 3, 2, 8), rate_lpm=D(i) / 4,
                 component=("hose", "valve")[i % 2])
    service.change_status(actor, service.leak_by_tag(actor, "1"), "repaired",
                          repaired_at=dt.date(2024, 5, 1))
    before = sorted(kept(actor.organization))
    assert before and LeakRepairedDaily.select().count() == 1
    LeakDaily.delete().execute()
    LeakRepairedDaily.delete().execute()
    for sql in m0011_leak_daily.backfill_sql(is_postgres()):
        database.execute_sql(sql)
    assert sorted(kept(actor.organization)) == before and not leak_daily_mismatches()
    assert LeakRepairedDaily.select().count() == 1


def test_leakctl_dashboard_check_and_recount(actor, tree, org):
    """Counts changed behind the triggers' back (a hand edit with triggers off, simulated by
    editing the rows) are found by `check` (exit 1) and rewritten by `recount`."""
    from click.testing import CliRunner

    from leakhub.audit.models import AuditEntry
    from leakhub.cli import cli

    for i in range(3):
        leak = new_leak(actor, tree["area"], rate_lpm=D("1.5") * (i + 1))
    service.change_status(actor, leak, "repaired", repaired_at=dt.date(2024, 4, 2))
    runner = CliRunner()
    ok = runner.invoke(cli, ["dashboard", "check", "--org", org.slug], catch_exceptions=False)
    assert ok.exit_code == 0 and "counts match the leaks" in ok.output
    LeakDaily.update(n=LeakDaily.n + 5).execute()
    LeakRepairedDaily.delete().execute()
    bad = runner.invoke(cli, ["dashboard", "check", "--json"], catch_exceptions=False)
    assert bad.exit_code == 1
    import json
    rows = json.loads(bad.output)[org.slug]
    assert {r["row"][0] for r in rows} == {"leak_daily", "leak_repaired_daily"}
    fixed = runner.invoke(cli, ["dashboard", "recount", "--org", org.slug],
                          catch_exceptions=False)
    # open, repaired, repair day
    assert fixed.exit_code == 0 and "(3 rows differed)" in fixed.output
    assert not leak_daily_mismatches()
    assert AuditEntry.select().where(AuditEntry.action == "dashboard.recount").count() == 1
    unknown = runner.invoke(cli, ["dashboard", "recount", "--org", "nope"])
    assert unknown.exit_code != 0 and "does not exist" in unknown.output
