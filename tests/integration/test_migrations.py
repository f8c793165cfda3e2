"""Every earlier schema version migrates to head on PostgreSQL and keeps its data: for each
version v, a scratch database (on the session stack's PostgreSQL) is migrated to v, gets one
row in every table that exists at v (values made from the column types, foreign keys pointing
at the rows made before), is migrated to head, and still has every row with its values."""
from __future__ import annotations

import datetime as dt
import decimal

import psycopg
import pytest
from psycopg import sql

from leakhub.core import migrations
from leakhub.core.db import database

from support.stackctl import scratch_database

pytestmark = pytest.mark.integration

HEAD = migrations.head()


@pytest.fixture
def scratch(stack, request):
    with scratch_database(stack, f"migrate_scratch_{request.node.callspec.id}_"
                                 f"{id(request) % 10000}") as name:
        yield name


def columns(conn, table):
    return conn.execute(
        "SELECT column_name, data_type, is_nullable, column_default, character_maximum_length "
        "FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s "
        "ORDER BY ordinal_position", (table,)).fetchall()


def foreign_keys(conn):
    """{(table, column): referenced table}"""
    rows = conn.execute("""
        SELECT tc.table_name, kcu.column_name, ccu.table_name
        FROM information_schema.table_constraints tc
        JOIN information_schema.key_column_usage kcu
          ON tc.constraint_name = kcu.constraint_name AND tc.table_schema = kcu.table_schema
        JOIN information_schema.constraint_column_usage ccu
          ON tc.constraint_name = ccu.constraint_name AND tc.table_schema = ccu.table_schema
        WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = 'public'""").fetchall()
    return {(t, c): ref for t, c, ref in rows}


def primary_key(conn, table):
    row = conn.execute("""
        SELECT kcu.column_name FROM information_schema.table_constraints tc
        JOIN information_schema.key_column_usage kcu
          ON tc.constraint_name = kcu.constraint_name AND tc.table_schema = kcu.table_schema
        WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = 'public'
          AND tc.table_name = %s ORDER BY kcu.ordinal_position LIMIT 1""", (table,)).fetchone()
    return row[0]


def value_for(table, column, data_type, length, n):
    if data_type in ("integer", "bigint", "smallint"):
        return 7 + n
    if data_type in ("numeric", "double precision", "real"):
        return decimal.Decimal("1.5") if data_type == "numeric" else 1.5
    if data_type == "boolean":
        return False
    if data_type.startswith("timestamp"):
        return dt.datetime(2030, 1, 2, 3, 4, 5)
    if data_type == "date":
        return dt.date(2030, 1, 2)
    if data_type == "bytea":
        return b"x"
    if data_type in ("json", "jsonb"):
        return "{}"
    text = f"{column[:6]}{n}" if column not in ("details", "changes", "manifest",
                                                 "components") else "{}"
    return text[:length] if length else text


def fill(conn, tables):
    """One row per table, parents first; returns {table: {column: value}} as inserted."""
    fks = foreign_keys(conn)
    inserted, ids = {}, {}
    pending = [t for t in tables if t != "schema_version"]
    for _round in range(len(pending) + 1):
        progress = False
        for table in list(pending):
            cols = columns(conn, table)
            needs = {fks[(table, c[0])] for c in cols
                     if (table, c[0]) in fks and c[2] == "NO" and fks[(table, c[0])] != table}
            if needs - set(ids):
                continue
            row = {}
            for n, (name, data_type, _nullable, default, length) in enumerate(cols):
                if default and default.startswith("nextval("):
                    continue
                if (table, name) in fks:
                    ref = fks[(table, name)]
                    if ref in ids:
                        row[name] = ids[ref]
                    continue
                row[name] = value_for(table, name, data_type, length, n)
            query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, row)),
                sql.SQL(", ").join(sql.Placeholder() * len(row)),
                sql.Identifier(primary_key(conn, table)))
            ids[table] = conn.execute(query, list(row.values())).fetchone()[0]
            inserted[table] = row
            pending.remove(table)
            progress = True
        if not pending:
            return inserted, ids
        assert progress, f"cannot order the inserts for {pending}"
    return inserted, ids


@pytest.mark.parametrize("version", list(range(1, HEAD)), ids=lambda v: f"v{v}")
def test_migrating_from_an_earlier_version_keeps_the_data(stack, scratch, tmp_path, version):
    migrations.migrate(tmp_path, target=version, log=lambda m: None)
    assert migrations.current_version() == version
    with psycopg.connect(host="127.0.0.1", port=int(stack.ports["postgres"]), dbname=scratch,
                         user="leakhub", autocommit=True, password=(
                             stack.home / "secrets" / "postgres-leakhub-password")
                         .read_text().strip()) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")]
        inserted, ids = fill(conn, tables)
        assert len(inserted) == len(tables) - 1

        def stored(table, row):
            got = conn.execute(sql.SQL("SELECT {} FROM {} WHERE {} = %s").format(
                sql.SQL(", ").join(map(sql.Identifier, row)), sql.Identifier(table),
                sql.Identifier(primary_key(conn, table))), (ids[table],)).fetchone()
            return None if got is None else dict(zip(row, got, strict=False))

        # As stored, not as inserted: columns kept by triggers (leak.site_id) hold what the
        # database derived.
        before = {table: stored(table, row) for table, row in inserted.items()}

        def count(table):
            return conn.execute(sql.SQL("SELECT COUNT(*) FROM {}").format(
                sql.Identifier(table))).fetchone()[0]

        # One row each as filled — except where a trigger added one as well (from v11 the
        # leak's insert also counts it in leak_daily beside the row filled there directly).
        counts = {table: count(table) for table in inserted}
        daily_before = (conn.execute("SELECT SUM(n) FROM leak_daily").fetchone()[0]
                        if "leak_daily" in tables else None)
        database.close()
        applied = migrations.migrate(tmp_path, log=lambda m: None)
        assert [m.version for m in applied] == list(range(version + 1, HEAD + 1))

        for table, row in inserted.items():
            got = stored(table, row)
            assert got is not None, f"{table}: the row is gone after migrating to {HEAD}"
            assert got == before[table], f"{table}: values changed"
            assert count(table) == counts[table], table   # nothing added or lost
        if "leak" in inserted:  # the dashboard's per-day counts include the migrated leak
            daily = conn.execute("SELECT SUM(n) FROM leak_daily").fetchone()[0]
            assert daily == (1 if daily_before is None else daily_before)
