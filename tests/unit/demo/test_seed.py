"""`leakctl demo seed`: realistic, complete with audit trail, repeatable."""
import datetime as dt
from collections import Counter

from leakhub.audit.models import AuditEntry
from leakhub.audit.verify import verify_org
from leakhub.demo.seed import seed
from leakhub.leaks.models import FIXED_STATUSES, Leak, LeakStatusChange
from leakhub.locations.models import EnergySettings, Location
from leakhub.surveys.models import Survey


def test_seed_fills_an_organization(org):
    today = dt.date(2025, 6, 30)
    result = seed(org, leaks=1200, sites=2, rng_seed=7, today=today)
    assert result.leaks == Leak.select().count() == 1200
    assert Location.select().where(Location.kind == "site").count() == 2
    assert Location.select().where(Location.kind == "area").count() >= 12
    assert Survey.select().count() == result.surveys >= 6
    assert EnergySettings.select().count() == 4
    leaks = list(Leak.select())
    components = Counter(lk.component for lk in leaks)
    assert components.most_common(1)[0][0] == "frl_unit"
    statuses = Counter(lk.status for lk in leaks)
    assert {"open", "repaired", "verified", "repair_planned"} <= set(statuses)
    assert statuses["verified"] + statuses["repaired"] > 0.3 * len(leaks)
    assert all(today - dt.timedelta(days=800) <= lk.found_at.date() <= today for lk in leaks)
    assert all(lk.repaired_at >= lk.found_at.date() for lk in leaks if lk.status in FIXED_STATUSES)
    assert all(lk.location.kind == "area" for lk in leaks[:50])
    assert sorted(int(lk.tag) for lk in leaks) == list(range(1, 1201))
    # Every created row has its audit entry; the chain verifies.
    assert AuditEntry.select().where(AuditEntry.entity_type == "leak").count() == 1200
    assert (AuditEntry.select().where(AuditEntry.entity_type == "leak_status_change").count()
            == LeakStatusChange.select().count() == result.status_changes)
    assert verify_org(org).ok
    # Seeding again adds with the next tag numbers.
    seed(org, leaks=10, sites=1, rng_seed=8, today=today)
    assert Leak.select().count() == 1210 and Leak.get(Leak.tag == "1210")
    assert verify_org(org).ok


def test_seed_cli(app, org, capsys):
    import json

    import pytest

    from leakhub.cli import main

    main(["demo", "seed", "--org", "acme", "--leaks", "25", "--sites", "1", "--seed", "1",
          "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["leaks"] == 25 and out["organization"] == "acme"
    assert Leak.select().count() == 25
    with pytest.raises(SystemExit) as exc:
        main(["demo", "seed", "--org", "nope", "--leaks", "1"])
    assert exc.value.code == 1
    assert "organization 'nope' does not exist" in capsys.readouterr().err
