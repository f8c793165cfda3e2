"""Write overhead of the audit mechanism: the same bulk update of N leaks (priority change,
version-checked per row, through audit.writer.update_many) with the audit trail written and
with the audit append switched off, as a ratio (target ≤ 1.5).

    .venv/bin/python bench/bench_audit.py [--leaks 10000] [--runs 3]
    DATABASE_URL=postgresql://... .venv/bin/python bench/bench_audit.py
"""
from __future__ import annotations

import argparse
import statistics
import time

from _common import environment, seed, system_actor


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaks", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with environment() as (app, org):
        from leakhub.audit import writer
        from leakhub.audit.models import AuditEntry
        from leakhub.audit.verify import verify_org
        from leakhub.leaks.models import Leak

        t_seed = seed(org, args.leaks, 4)
        print(f"seeded {args.leaks} leaks in {t_seed:.1f} s")
        actor = system_actor(org, "bench audit")
        real_append = writer.append

        def one_run(priority, audited):
            leaks = list(Leak.select().where(Leak.organization == org).limit(args.leaks))
            if not audited:
                writer.append = lambda *a, **k: None
            try:
                t = time.perf_counter()
                changed = writer.update_many(actor, leaks, {"priority": priority})
                elapsed = time.perf_counter() - t
            finally:
                writer.append = real_append
            assert changed == len(leaks)
            return elapsed

        Leak.update(priority=2).where(Leak.organization == org).execute()
        with_audit, without = [], []
        entries_before = AuditEntry.select().where(AuditEntry.organization == org).count()
        for _i in range(args.runs):
            # alternate so that caches and WAL state favour neither side
            without.append(one_run(1, audited=False))
            with_audit.append(one_run(3, audited=True))
        written = AuditEntry.select().where(AuditEntry.organization == org).count() - entries_before
        a, b = statistics.median(with_audit), statistics.median(without)
        print(f"bulk update of {args.leaks} leaks: with audit {a:.2f} s, without {b:.2f} s "
              f"(median of {args.runs}); ratio {a / b:.2f} (target <= 1.5)")
        print(f"audit entries written: {written}; chain intact: {verify_org(org).ok}")


if __name__ == "__main__":
    main()
