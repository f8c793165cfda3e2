"""Leak register services: tag numbering, status workflow, history, lists, surveys, isolation."""
import datetime as dt
from decimal import Decimal as D

import pytest

from leakhub.audit.writer import ConflictError
from leakhub.core.validation import ValidationError
from leakhub.leaks import service
from leakhub.leaks.models import Leak
from leakhub.locations import service as loc

from support.reporting_data import new_leak

# ---------------------------------------------------------------- locations

def test_location_paths_and_rules(actor, tree):
    assert tree["site"].path == f"/{tree['site'].id}/"
    assert tree["area"].path == f"/{tree['site'].id}/{tree['hall'].id}/{tree['area'].id}/"
    assert tree["area"].site_id == tree["site"].id
    with pytest.raises(ValidationError) as exc:
        loc.create_location(actor, kind="area", code="X", name="X", parent=tree["site"])
    assert "parent" in exc.value.errors
    with pytest.raises(ValidationError) as exc:
        loc.create_location(actor, kind="building", code="H1", name="dup", parent=tree["site"])
    assert "code" in exc.value.errors
    with pytest.raises(ValidationError):
        loc.delete_location(actor, tree["hall"])  # has an area below
    roots = loc.tree(actor)
    assert [n.location.code for n in roots] == ["BER", "MUC"]
    assert roots[0].children[0].children[0].location.code == "A1"


# ---------------------------------------------------------------- tag numbering

def test_sequential_tags(actor, tree):
    a = new_leak(actor, tree["area"])
    b = new_leak(actor, tree["area"])
    assert (a.tag, b.tag) == ("1", "2")
    assert b.tag_number == 2


def test_preprinted_tag_kept_and_sequence_continues_after_it(actor, tree):
    a = new_leak(actor, tree["area"], tag=" 004711 ")
    assert a.tag == "004711" and a.tag_number == 4711
    b = new_leak(actor, tree["area"], tag="B-17")
    assert b.tag == "B-17" and b.tag_number is None
    c = new_leak(actor, tree["area"])
    assert c.tag == "4712"


def test_duplicate_tag_rejected_naming_the_field(actor, tree):
    new_leak(actor, tree["area"], tag="100")
    for dup in ("100", "0100"):
        with pytest.raises(ValidationError) as exc:
            new_leak(actor, tree["area"], tag=dup)
        assert list(exc.value.errors) == ["tag"]
        assert "already used" in exc.value.errors["tag"]
    with pytest.raises(ValidationError) as exc:
        new_leak(actor, tree["area"], tag="bad tag!")
    assert "tag" in exc.value.errors
    assert Leak.select().count() == 1  # nothing half-written


def test_duplicate_tag_on_edit_rejected(actor, tree):
    new_leak(actor, tree["area"], tag="7")
    b = new_leak(actor, tree["area"], tag="8")
    with pytest.raises(ValidationError) as exc:
        service.update_leak(actor, b, expected_version=b.version, tag="7")
    assert "tag" in exc.value.errors


def test_tags_are_per_organization(actor, tree, make_actor, other_org):
    new_leak(actor, tree["area"], tag="5")
    other = make_actor("admin", organization=other_org)
    site = loc.create_location(other, kind="site", code="X", name="X")
    assert new_leak(other, site, tag="5").tag == "5"
    assert new_leak(other, site).tag == "6"


# ---------------------------------------------------------------- status workflow

def test_full_workflow_with_history(actor, tree):
    leak = new_leak(actor, tree["area"])
    assert leak.status == "open"
    service.change_status(actor, leak, "repair_planned", due_date=dt.date(2024, 4, 1),
                          expected_version=leak.version)
    service.change_status(actor, leak, "repaired", repair_cost=D("12.50"),
                          repaired_at=dt.date(2024, 3, 20), repaired_by="Schmidt")
    service.change_status(actor, leak, "verified", verification_note="re-measured: 0 l/min",
                          note="checked with LD 510")
    leak = Leak.get_by_id(leak.id)
    assert leak.status == "verified"
    assert leak.due_date == dt.date(2024, 4, 1)
    assert leak.repaired_at == dt.date(2024, 3, 20) and leak.repaired_by == "Schmidt"
    assert leak.repair_cost == D("12.50") and leak.verified_at is not None
    assert leak.verification_note == "re-measured: 0 l/min"
    hist = service.history(actor, leak)
    assert [(h.from_status, h.to_status) for h in hist] == [
        (None, "open"), ("open", "repair_planned"), ("repair_planned", "repaired"),
        ("repaired", "verified")]
    assert hist[-1].note == "checked with LD 510"
    assert hist[-1].actor_label == actor.user.email
    from leakhub.audit.models import AuditEntry
    assert AuditEntry.select().where(AuditEntry.action == "status_change").count() == 3


@pytest.mark.parametrize("path,illegal", [
    ((), "verified"),                       # open → verified skips repair
    (("repaired", "verified"), "open"),     # verified is final
    ((), "to_review"),                      # nothing goes back to review
    (("not_a_leak",), "repaired"),
])
def test_illegal_transitions_rejected_with_clear_message(actor, tree, path, illegal):
    leak = new_leak(actor, tree["area"])
    for step in path:
        service.change_status(actor, leak, step)
    before = leak.status
    with pytest.raises(ValidationError) as exc:
        service.change_status(actor, leak, illegal)
    msg = exc.value.errors["status"]
    assert "cannot change the status" in msg and leak.tag in msg
    assert Leak.get_by_id(leak.id).status == before


def test_to_review_goes_to_open_or_not_a_leak(actor, tree):
    a = new_leak(actor, tree["area"], status="to_review", source="device")
    b = new_leak(actor, tree["area"], status="to_review")
    service.change_status(actor, a, "open")
    service.change_status(actor, b, "not_a_leak")
    with pytest.raises(ValidationError):
        service.change_status(actor, new_leak(actor, tree["area"], status="to_review"), "repaired")
    with pytest.raises(ValidationError):
        new_leak(actor, tree["area"], status="verified")


def test_viewer_cannot_change_status(make_actor, actor, tree):
    from werkzeug.exceptions import Forbidden

    leak = new_leak(actor, tree["area"])
    with pytest.raises(Forbidden):
        service.change_status(make_actor("viewer"), leak, "repaired")


def test_bulk_status_all_or_nothing(actor, tree):
    a, b, c = (new_leak(actor, tree["area"]) for _ in range(3))
    service.change_status(actor, c, "repaired")
    with pytest.raises(ValidationError) as exc:
        service.bulk_change_status(actor, [a.id, b.id, c.id], "repair_planned")
    assert c.tag in exc.value.errors["status"]
    assert {lk.status for lk in Leak.select()} == {"open", "repaired"}
    assert service.bulk_change_status(actor, [a.id, b.id], "repair_planned", note="week 12") == 2
    assert {Leak.get_by_id(i).status for i in (a.id, b.id)} == {"repair_planned"}


# ---------------------------------------------------------------- edit + conflict

def test_version_conflict_never_overwrites(actor, tree):
    leak = new_leak(actor, tree["area"], description="first")
    first = Leak.get_by_id(leak.id)
    second = Leak.get_by_id(leak.id)
    service.update_leak(actor, first, expected_version=1, description="edited by A")
    with pytest.raises(ConflictError) as exc:
        service.update_leak(actor, second, expected_version=1, description="edited by B")
    assert exc.value.current.description == "edited by A"
    assert Leak.get_by_id(leak.id).description == "edited by A"
    assert Leak.get_by_id(leak.id).version == 2


def test_validation_of_rates_and_references(actor, tree, make_actor, other_org):
    with pytest.raises(ValidationError) as exc:
        service.create_leak(actor, location=tree["area"].id, found_at=dt.datetime(2024, 1, 1))
    assert "rate_lpm" in exc.value.errors
    with pytest.raises(ValidationError) as exc:
        new_leak(actor, tree["area"], rate_lpm=D("10"), rate_low_lpm=D("12"))
    assert "rate_low_lpm" in exc.value.errors
    est = new_leak(actor, tree["area"], rate_lpm=None, method="estimate", estimate_class="medium")
    assert est.rate_lpm == D("84.951")
    foreign = loc.create_location(make_actor("admin", organization=other_org), kind="site",
                                  code="F", name="F")
    with pytest.raises(ValidationError) as exc:
        new_leak(actor, foreign)
    assert "location" in exc.value.errors


def test_parse_leak_form_decimal_comma_and_timezone(org):
    values = service.parse_leak_form({"location": "3", "found_at": "2024-07-01T10:30",
                                      "rate_lpm": "12,5", "pressure_bar": "6,3",
                                      "priority": "1", "component": "frl_unit"},
                                     tzname="Europe/Berlin", creating=True)
    assert values["rate_lpm"] == D("12.5") and values["pressure_bar"] == D("6.3")
    assert values["found_at"] == dt.datetime(2024, 7, 1, 8, 30)  # CEST → UTC
    assert values["priority"] == 1
    with pytest.raises(ValidationError) as exc:
        service.parse_leak_form({"rate_lpm": "zwölf", "component": "pipe"},
                                tzname="UTC", creating=True)
    assert {"rate_lpm", "component", "location", "found_at"} <= set(exc.value.errors)


# ---------------------------------------------------------------- lists

def test_list_filters(actor, tree):
    a = new_leak(actor, tree["area"], component="frl_unit", priority=1,
                 description="Wartungseinheit")
    b = new_leak(actor, tree["hall"], component="hose", found_at=dt.datetime(2023, 1, 5))
    c = new_leak(actor, tree["site2"], component="hose", rate_lpm=D("99"))
    service.change_status(actor, c, "repaired")

    def tags(**args):
        page = service.list_leaks(actor, service.parse_filter(args), tzname="Europe/Berlin")
        return [r.leak.tag for r in page.rows]

    assert tags() == [a.tag, c.tag, b.tag] or set(tags()) == {a.tag, b.tag, c.tag}
    assert tags(location=str(tree["site"].id), sort="tag") == [a.tag, b.tag]
    assert tags(location=str(tree["hall"].id), sort="tag") == [a.tag, b.tag]
    assert tags(location=str(tree["area"].id)) == [a.tag]
    assert tags(status="repaired") == [c.tag]
    assert tags(component="hose", sort="-rate") == [c.tag, b.tag]
    assert tags(priority="1") == [a.tag]
    assert tags(date_from="2023-01-01", date_to="2023-12-31") == [b.tag]
    assert tags(q="wartung") == [a.tag]
    assert tags(q="München") == [c.tag]
    page = service.list_leaks(actor, service.parse_filter({"per_page": "25", "page": "9"}))
    assert page.total == 3 and page.page == 1 and page.pages == 1
    assert page.rows[0].figures.cost_year > 0
    flt = service.parse_filter({"priority": "9", "date_from": "gestern", "sort": "evil"})
    assert set(flt.errors) == {"priority", "date_from"} and flt.sort == "-found"


def test_list_is_isolated_per_organization(actor, tree, make_actor, other_org):
    new_leak(actor, tree["area"])
    other = make_actor("admin", organization=other_org)
    page = service.list_leaks(other, service.parse_filter({}))
    assert page.total == 0
    page = service.list_leaks(other, service.parse_filter({"location": str(tree["site"].id)}))
    assert page.total == 0


# ---------------------------------------------------------------- surveys

def test_survey_comparison(actor, tree):
    from leakhub.surveys import service as sv

    s1 = sv.create_survey(actor, name="Herbst 2023", period_start=dt.date(2023, 10, 1),
                          scope=[tree["site"].id], auditor_company="Druckluft Audit GmbH")
    s2 = sv.create_survey(actor, name="Frühjahr 2024", period_start=dt.date(2024, 4, 1),
                          scope=[tree["site"].id])
    other_scope = sv.create_survey(actor, name="München", period_start=dt.date(2024, 1, 1),
                                   scope=[tree["site2"].id])
    assert sv.previous_survey(actor, s2) == s1
    assert sv.previous_survey(actor, other_scope) is None
    fixed = new_leak(actor, tree["area"], survey=s1.id, component="frl_unit")
    service.change_status(actor, fixed, "repaired")
    still = new_leak(actor, tree["hall"], survey=s1.id, component="hose")
    recurring = new_leak(actor, tree["area"], survey=s2.id, component="frl_unit",
                         found_at=dt.datetime(2024, 4, 2))
    new = new_leak(actor, tree["hall"], survey=s2.id, component="valve",
                   found_at=dt.datetime(2024, 4, 2))
    result = sv.compare(actor, s2, s1)
    assert [lk.id for lk in result.new] == [new.id]
    assert [lk.id for lk in result.recurring] == [recurring.id]
    assert [lk.id for lk in result.still_open] == [still.id]
    assert [lk.id for lk in result.repaired] == [fixed.id]
    assert result.counts == {"new": 1, "recurring": 1, "still_open": 1, "repaired": 1}


def test_survey_validation(actor, tree, make_actor, other_org):
    from leakhub.surveys import service as sv

    with pytest.raises(ValidationError) as exc:
        sv.parse_survey_form({"name": "", "period_start": "2024-05-01", "period_end": "2024-04-01"})
    assert set(exc.value.errors) == {"name", "period_end"}
    foreign = loc.create_location(make_actor("admin", organization=other_org), kind="site",
                                  code="F", name="F")
    with pytest.raises(ValidationError) as exc:
        sv.create_survey(actor, name="x", period_start=dt.date(2024, 1, 1), scope=[foreign.id])
    assert "scope" in exc.value.errors


def test_edit_keeps_fields_not_sent(actor, tree):
    first = new_leak(actor, tree["area"], component="hose")
    service.change_status(actor, first, "repaired")
    again = new_leak(actor, tree["area"], previous_leak=first.id, spare_part="Schlauch 8x6")
    values = service.parse_leak_form({"location": str(tree["area"].id), "rate_lpm": "30",
                                      "spare_part": ""}, tzname="UTC", creating=False)
    service.update_leak(actor, again, expected_version=again.version, **values)
    again = Leak.get_by_id(again.id)
    assert again.previous_leak_id == first.id and again.rate_lpm == D("30")
    assert again.spare_part == "" and again.found_at == dt.datetime(2024, 3, 1, 9)
