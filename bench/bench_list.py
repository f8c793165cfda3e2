"""Leak list benchmark: N demo leaks (`leakctl demo seed`'s service), then GET /leaks server
time p50/p95 (Flask test client, page rendered) for a filtered page 1 and a deep page, the raw
SQL those pages need (the statements on the leak table, executed directly) and the ratio; then
the overhead of permission filtering: an `external` user holding G grants (location subtrees
and surveys, some expired) against an admin, on the same list.

    .venv/bin/python bench/bench_list.py [--leaks 100000] [--sites 20] [--grants 1000] [--runs 20]

With DATABASE_URL (PostgreSQL) or --home, the seeded organization is kept and shared with
bench_dashboard.py (same slug), so the second run skips seeding.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import random

from _common import environment, load, measure, recorded_sql, seed_once


def seed_grants(org, n_grants: int, rng: random.Random):
    """An external user with `n_grants` grants: 70 % on locations, 30 % on surveys; ~10 %
    expired, ~20 % expiring later. Reused when it exists."""
    from leakhub.authz.models import Grant
    from leakhub.core.db import database, utcnow
    from leakhub.identity.models import User
    from leakhub.locations.models import Location
    from leakhub.surveys.models import Survey

    user = User.get_or_none(User.organization == org, User.sub == "bench-external")
    if user is None:
        user = User.create(organization=org, sub="bench-external",
                           email="external@example.com", role="external")
    have = Grant.select().where(Grant.user == user).count()
    if have >= n_grants:
        return user, have
    n_loc = n_grants * 7 // 10
    n_srv = n_grants - n_loc
    now = utcnow()
    with database.atomic():
        buildings = list(Location.select().where(Location.organization == org,
                                                 Location.kind == "building"))
        seeded_areas = list(Location.select().where(Location.organization == org,
                                                    Location.kind == "area",
                                                    ~Location.code.startswith("X")))
        seeded_surveys = list(Survey.select().where(Survey.organization == org,
                                                    ~Survey.name.startswith("Bench ")))
        # A quarter of the areas and surveys with leaks; the rest of the grants on extra
        # locations and surveys (distinct rows, no leaks), so the user sees part of the data.
        locs = rng.sample(seeded_areas, min(n_loc, len(seeded_areas) // 4))
        k = 0
        while len(locs) < n_loc:
            k += 1
            parent = buildings[k % len(buildings)]
            loc = Location.get_or_none(Location.organization == org, Location.parent == parent,
                                       Location.code == f"X{k}")
            locs.append(loc or Location.create(organization=org, parent=parent, kind="area",
                                               code=f"X{k}", name=f"Bench area {k}"))
        surveys = rng.sample(seeded_surveys, min(n_srv, len(seeded_surveys) // 4))
        k = 0
        while len(surveys) < n_srv:
            k += 1
            name = f"Bench survey {k}"
            srv = Survey.get_or_none(Survey.organization == org, Survey.name == name)
            surveys.append(srv or Survey.create(organization=org, name=name,
                                                period_start=dt.date(2020, 1, 1),
                                                status="completed"))
        rows = []
        for i, target in enumerate(locs + surveys):
            r = rng.random()
            expires = (now - dt.timedelta(days=rng.randint(1, 300)) if r < 0.1 else
                       now + dt.timedelta(days=rng.randint(1, 300)) if r < 0.3 else None)
            is_loc = i < n_loc
            rows.append({"organization": org.id, "user": user.id,
                         "location": target.id if is_loc else None,
                         "survey": None if is_loc else target.id,
                         "level": "edit" if rng.random() < 0.3 else "view",
                         "expires_at": expires, "note": "bench", "created_at": now})
        Grant.delete().where(Grant.user == user).execute()
        for i in range(0, len(rows), 500):
            Grant.insert_many(rows[i:i + 500]).execute()
    return user, len(rows)


def login(app, org, user):
    client = app.test_client()
    with client.session_transaction() as s:
        s["org_id"] = org.id
        s["_user_id"] = str(user.id)
        s["_fresh"] = True
    return client


def explain(stmts) -> None:
    """EXPLAIN ANALYZE of each statement (PostgreSQL only)."""
    from leakhub.core.db import database, is_postgres

    if not is_postgres():
        return
    for sql, params in stmts:
        plan = database.execute_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, params).fetchall()
        print("      " + "\n      ".join(r[0] for r in plan))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaks", type=int, default=100_000)
    ap.add_argument("--sites", type=int, default=20)
    ap.add_argument("--grants", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--home", default="", help="keep/reuse the seeded data in this Leakhub "
                    "home (SQLite) or organization (DATABASE_URL) between runs")
    ap.add_argument("--explain", action="store_true",
                    help="print EXPLAIN ANALYZE of the leak statements (PostgreSQL)")
    args = ap.parse_args()
    # The dashboard benchmark's organization: one seeding serves both.
    slug = f"bench-dash-{args.leaks}" if args.home or os.environ.get("DATABASE_URL") else None
    with environment(home=args.home or None, slug=slug,
                     keep=bool(args.home)) as (app, org):
        from leakhub.authz import Actor
        from leakhub.core.db import database, is_postgres
        from leakhub.identity.models import User
        from leakhub.leaks import service
        from leakhub.leaks.models import Leak
        from leakhub.locations.models import Location

        n = seed_once(org, args.leaks, args.sites)
        external, n_grants = seed_grants(org, args.grants, random.Random(7))
        admin = User.get_or_none(User.organization == org, User.sub == "bench") or User.create(
            organization=org, sub="bench", email="bench@example.com", role="admin")
        if is_postgres():
            for table in ("leak", "location", "grant", "survey", "energy_settings"):
                database.execute_sql(f'VACUUM ANALYZE "{table}"')
        n_loc = Location.select().where(Location.organization == org).count()

        # The site with the most leaks: the filtered page's subtree.
        site = max((loc for loc in Location.select().where(Location.organization == org,
                                                             Location.kind == "site")),
                   key=lambda s: Leak.select().join(Location, on=(Leak.location == Location.id))
                   .where(Leak.organization == org, Location.path.startswith(s.path)).count())
        cases = [
            ("filtered page 1 (open, site, by rate)",
             {"status": "open", "location": str(site.id), "sort": "-rate"}),
            ("deep page 200 (all, by date)", {"page": "200"}),
            ("page 1 (all, by date)", {}),
        ]
        admin_actor = Actor(organization=org, user=admin)
        ext_actor = Actor(organization=org, user=external)
        admin_client, ext_client = login(app, org, admin), login(app, org, external)
        print(f"{n} leaks, {n_loc} locations; external user: {n_grants} grants; {load()}")

        def leak_statements(actor, params):
            """The statements on the leak table one list page runs (count + page)."""
            flt = service.parse_filter(params)
            with recorded_sql() as statements:
                service.list_leaks(actor, flt, tzname="Europe/Berlin")
            return [(sql, p) for sql, p in statements if 'FROM "leak"' in sql]

        def raw(statements):
            def run():
                for sql, p in statements:
                    database.execute_sql(sql, p).fetchall()
            return run

        def http(client, params):
            def run():
                # A fresh app context per request, as in a server: the benchmark's own context
                # would otherwise be reused and `g` (the cached actor) shared between users.
                with app.app_context():
                    resp = client.get("/leaks", query_string=params,
                                      base_url="https://localhost")
                assert resp.status_code == 200, resp.status_code
            return run

        def count_queries(client, params):
            with recorded_sql() as statements:
                http(client, params)()
            return len(statements)

        def ms(x):
            return f"{x * 1000:7.1f} ms"

        print(f"\nGET /leaks as admin ({args.runs} runs; server time incl. page render)")
        results = {}
        for label, params in cases:
            stmts = leak_statements(admin_actor, params)
            for _ in range(2):  # warm both
                raw(stmts)()
                http(admin_client, params)()
            sql50, sql95 = measure(raw(stmts), args.runs)
            web50, web95 = measure(http(admin_client, params), args.runs)
            results[label] = (sql50, web50)
            print(f"  {label}")
            print(f"    raw SQL ({len(stmts)} leak statements): p50 {ms(sql50)}  p95 {ms(sql95)}")
            print(f"    GET /leaks:                    p50 {ms(web50)}  p95 {ms(web95)}  "
                  f"ratio to SQL {web50 / sql50:5.2f}  "
                  f"({count_queries(admin_client, params)} queries per request)")
            if args.explain:
                explain(stmts)

        print(f"\nPermission filtering: external user with {n_grants} grants vs admin "
              f"({args.runs} runs)")
        for label, params in cases[1:]:
            ext_stmts = leak_statements(ext_actor, params)
            adm_stmts = leak_statements(admin_actor, params)
            visible = service.list_leaks(ext_actor, service.parse_filter(params)).total
            for _ in range(2):
                raw(ext_stmts)()
                raw(adm_stmts)()
                http(ext_client, params)()
            a50, a95 = measure(raw(adm_stmts), args.runs)
            e50, e95 = measure(raw(ext_stmts), args.runs)
            w_a50, w_a95 = measure(http(admin_client, params), args.runs)
            w_e50, w_e95 = measure(http(ext_client, params), args.runs)
            print(f"  {label}: external sees {visible} of {n} leaks")
            print(f"    list SQL  admin    p50 {ms(a50)}  p95 {ms(a95)}")
            print(f"    list SQL  external p50 {ms(e50)}  p95 {ms(e95)}  "
                  f"ratio to unfiltered {e50 / a50:5.2f}")
            print(f"    GET /leaks admin    p50 {ms(w_a50)}  p95 {ms(w_a95)}")
            print(f"    GET /leaks external p50 {ms(w_e50)}  p95 {ms(w_e95)}  "
                  f"ratio to unfiltered {w_e50 / w_a50:5.2f}  "
                  f"({count_queries(ext_client, params)} queries per request)")
            if args.explain:
                explain(ext_stmts)
        print(f"\n{load()}")


if __name__ == "__main__":
    main()
