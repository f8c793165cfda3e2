"""A floor plan's encrypted file goes when its plan goes (issue 18 gap): deleting the plan,
replacing it, deleting its location — each after the change commits; a change that rolls
back removes no file. No orphan file stays in the plan storage."""
import io

import pytest
from PIL import Image

from leakhub.core.db import after_commit, database
from leakhub.locations import service as locations
from leakhub.plans import service
from leakhub.plans.models import FloorPlan

from support.reporting_data import make_tree


def png(colour) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (120, 80), colour).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def places(actor):
    return make_tree(actor)


def stored(actor) -> set[str]:
    return set(service.plan_storage(actor.organization).keys())


def referenced(actor) -> set[str]:
    return {k for (k,) in FloorPlan.select(FloorPlan.sha256).where(
        FloorPlan.organization == actor.organization.id).tuples()}


class Boom(Exception):
    pass


def test_deleting_the_plan_removes_its_file(actor, places):
    plan = service.upload_plan(actor, places["hall"], "a.png", png((1, 2, 3)))
    assert stored(actor) == {plan.sha256}
    service.delete_plan(actor, places["hall"])
    assert stored(actor) == set() == referenced(actor)


def test_replacing_the_plan_removes_the_old_file(actor, places):
    old = service.upload_plan(actor, places["hall"], "a.png", png((1, 2, 3)))
    new = service.upload_plan(actor, places["hall"], "b.png", png((9, 8, 7)))
    assert old.sha256 != new.sha256
    assert stored(actor) == {new.sha256} == referenced(actor)


def test_deleting_the_location_removes_its_plan_file(actor, places):
    area = service.upload_plan(actor, places["area"], "a.png", png((1, 2, 3)))
    site2 = service.upload_plan(actor, places["site2"], "m.png", png((5, 5, 5)))
    locations.delete_location(actor, places["area"])
    assert stored(actor) == {site2.sha256} == referenced(actor)
    assert area.sha256 not in stored(actor)
    locations.delete_location(actor, places["site2"])
    assert stored(actor) == set() == referenced(actor)


def test_the_same_bytes_on_two_plans_stay_while_one_uses_them(actor, places):
    data = png((1, 2, 3))
    a = service.upload_plan(actor, places["area"], "a.png", data)
    service.upload_plan(actor, places["site2"], "a.png", data)
    locations.delete_location(actor, places["area"])
    assert stored(actor) == {a.sha256}      # the MUC plan still shows it
    service.delete_plan(actor, places["site2"])
    assert stored(actor) == set()


@pytest.mark.parametrize("change", ["delete_plan", "replace", "delete_location"])
def test_a_rolled_back_change_removes_no_file(actor, places, change):
    plan = service.upload_plan(actor, places["area"], "a.png", png((1, 2, 3)))
    with pytest.raises(Boom), database.atomic():
        if change == "delete_plan":
            service.delete_plan(actor, places["area"])
        elif change == "replace":
            service.upload_plan(actor, places["area"], "b.png", png((4, 4, 4)))
        else:
            locations.delete_location(actor, places["area"])
        raise Boom
    assert FloorPlan.get_by_id(plan.id).sha256 == plan.sha256
    assert stored(actor) == {plan.sha256} == referenced(actor)
    assert service.plan_storage(actor.organization).read(plan.sha256)


def test_a_rolled_back_savepoint_keeps_the_file_the_outer_commit_keeps(actor, places):
    """The deletion inside a savepoint that rolls back: the outer transaction commits, the
    callback runs, sees the plan row still there and leaves the file."""
    plan = service.upload_plan(actor, places["area"], "a.png", png((1, 2, 3)))
    with database.atomic():
        with pytest.raises(Boom), database.atomic():
            service.delete_plan(actor, places["area"])
            raise Boom
    assert stored(actor) == {plan.sha256} == referenced(actor)
    # A replacement rolled back in a savepoint: its new file goes, the old one stays.
    with database.atomic():
        with pytest.raises(Boom), database.atomic():
            service.upload_plan(actor, places["area"], "b.png", png((4, 4, 4)))
            raise Boom
    assert stored(actor) == {plan.sha256} == referenced(actor)


def test_after_commit_runs_after_commit_and_not_after_rollback(app):
    ran = []
    after_commit(lambda: ran.append("now"))         # no transaction: at once
    with database.atomic():
        after_commit(lambda: ran.append("committed"))
        assert ran == ["now"]
    with pytest.raises(Boom), database.atomic():
        after_commit(lambda: ran.append("rolled back"))
        after_commit(lambda: ran.append("either way"), also_on_rollback=True)
        raise Boom
    with database.atomic():
        pass
    assert ran == ["now", "committed", "either way"]
