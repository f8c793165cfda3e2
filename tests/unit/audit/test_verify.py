"""Tamper evidence of the audit chain: changed, deleted, swapped entries are named;
pruning by retention is not tampering."""
import datetime as dt

import pytest

from leakhub.audit import writer
from leakhub.audit.models import AuditEntry
from leakhub.audit.verify import prune_before, verify_org
from leakhub.authz import Actor
from leakhub.orgs.models import Organization


@pytest.fixture
def org_with_entries(app):
    org = Organization.create(slug="acme", name="ACME", oidc_client_secret="x")
    actor = Actor.system(org)
    for i in range(6):
        writer.event(actor, "test.event", details={"i": i})
    return org


def _entry(org, seq):
    return AuditEntry.get((AuditEntry.organization == org) & (AuditEntry.seq == seq))


def test_intact_chain_verifies(org_with_entries):
    report = verify_org(org_with_entries)
    assert report.ok and report.entries == 6


def test_changed_entry_is_named(org_with_entries):
    e = _entry(org_with_entries, 3)
    AuditEntry.update(changes='{"i": 99}').where(AuditEntry.id == e.id).execute()
    report = verify_org(org_with_entries)
    assert not report.ok and report.seq == 3 and "changed" in report.problem


def test_deleted_entry_is_named(org_with_entries):
    AuditEntry.delete().where(AuditEntry.id == _entry(org_with_entries, 4).id).execute()
    report = verify_org(org_with_entries)
    assert not report.ok and "seq 4 is missing" in report.problem


def test_deleted_newest_entry_is_detected(org_with_entries):
    AuditEntry.delete().where(AuditEntry.id == _entry(org_with_entries, 6).id).execute()
    report = verify_org(org_with_entries)
    assert not report.ok and "newest" in report.problem


def test_swapped_entries_are_detected(org_with_entries):
    a, b = _entry(org_with_entries, 2), _entry(org_with_entries, 3)
    AuditEntry.update(seq=-1).where(AuditEntry.id == a.id).execute()
    AuditEntry.update(seq=2).where(AuditEntry.id == b.id).execute()
    AuditEntry.update(seq=3).where(AuditEntry.id == a.id).execute()
    report = verify_org(org_with_entries)
    assert not report.ok and report.seq == 2


def test_pruning_keeps_the_chain_verifiable(app, monkeypatch):
    import leakhub.audit.writer as w

    org = Organization.create(slug="prune", name="Prune", oidc_client_secret="x")
    actor = Actor.system(org)
    monkeypatch.setattr(w, "utcnow", lambda: dt.datetime(2020, 1, 1))
    for i in range(3):
        writer.event(actor, "old.event", details={"i": i})
    monkeypatch.undo()
    for i in range(2):
        writer.event(actor, "new.event", details={"i": i})
    assert verify_org(org).ok
    assert prune_before(org, dt.datetime(2021, 1, 1)) == 3
    report = verify_org(org)
    assert report.ok and report.entries == 2
    # Removing an entry after pruning is still caught.
    AuditEntry.delete().where(AuditEntry.seq == 4).execute()
    assert not verify_org(org).ok


def test_decimal_padding_of_the_database_is_no_change():
    """PostgreSQL returns NUMERIC(10,2) 6.5 as 6.50: an edit that keeps the value records
    nothing (and bumps no version)."""
    from decimal import Decimal

    from leakhub.audit import writer

    assert writer.diff({"rate": writer._jsonable(Decimal("6.50"))},
                       {"rate": writer._jsonable(Decimal("6.5"))}) == {}
    assert writer._jsonable(Decimal("100.00")) == "100"
    assert writer._jsonable(Decimal("0.000")) == "0"
    assert writer._jsonable(Decimal("12.345")) == "12.345"
