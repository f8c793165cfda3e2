"""Import benchmark: a German Excel CSV (cp1252, ';', decimal comma, dd.mm.yyyy) with N rows
(default 10,000) — preview (dry run), commit, and an idempotent re-import. Target: < 10 s.

    .venv/bin/python bench/bench_import.py [--rows 10000]     (DATABASE_URL=postgresql://… for PG)
"""
from __future__ import annotations

import argparse
import random

from _common import environment, system_actor, timed

COMPONENTS = ["Kupplung", "Schlauch", "Wartungseinheit", "Verschraubung", "Ventil",
              "Schnellkupplung", "Kondensatableiter", "Zylinder", "Flansch", "Sonstiges"]


def make_csv(rows: int) -> bytes:
    rng = random.Random(1)
    lines = ["Leckage-Nr;Standort;Datum;Leckrate l/min;Druck;Bauteil;Priorität;Bemerkung;Status"]
    for i in range(1, rows + 1):
        site = f"W{rng.randint(1, 5)}"
        path = f"{site}/H{rng.randint(1, 6)}/B{rng.randint(1, 8)}"
        day = f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.2024"
        rate = f"{rng.uniform(0.5, 120):.1f}".replace(".", ",")
        pressure = f"{rng.uniform(5.5, 7.5):.1f}".replace(".", ",")
        comp = rng.choice(COMPONENTS)
        status = rng.choice(["offen", "offen", "offen", "repariert", "verifiziert"])
        lines.append(f"{100000 + i};{path};{day};{rate};{pressure};{comp};{rng.randint(1, 3)};"
                     f"Leck an {comp} – Größe {rng.randint(1, 9)};{status}")
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    args = ap.parse_args()
    data = make_csv(args.rows)
    print(f"file: {args.rows} rows, {len(data) / 1e6:.1f} MB")
    with environment() as (_app, org):
        from leakhub.imports import service
        from leakhub.leaks.models import Leak

        actor = system_actor(org, "bench import")
        opts = service.Options(create_locations=True)
        t_preview, res = timed(service.run_import, actor, data, "bench.csv", options=opts,
                               dry_run=True)
        assert res.ok, [str(e) for e in res.errors[:5]]
        print(f"preview (parse + validate, dry run): {t_preview:6.2f} s")
        t_commit, res = timed(service.run_import, actor, data, "bench.csv", options=opts)
        assert res.committed, [str(e) for e in res.errors[:5]]
        n = Leak.select().where(Leak.organization == org).count()
        print(f"import (validate + write, one transaction): {t_commit:6.2f} s  "
              f"({n} leaks, {len(res.missing_locations)} locations created)  target < 10 s")
        t_again, res = timed(service.run_import, actor, data, "bench.csv", options=opts)
        print(f"re-import (all unchanged): {t_again:6.2f} s  (new={res.new}, "
              f"unchanged={res.unchanged})")


if __name__ == "__main__":
    main()
