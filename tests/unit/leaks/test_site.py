"""leak.site_id (migration 0010): the site of the leak's location, kept by the database on
every write path — the service, plain INSERTs (imports, demo seed) and location changes."""
import datetime as dt
from decimal import Decimal

import pytest

from leakhub import authz
from leakhub.core.db import database
from leakhub.leaks import service
from leakhub.leaks.models import Leak
from leakhub.locations import service as locations


@pytest.fixture
def places(org):
    actor = authz.Actor.system(org)
    a = locations.create_location(actor, kind="site", code="A", name="Plant A")
    hall = locations.create_location(actor, kind="building", code="H", name="Hall", parent=a)
    area = locations.create_location(actor, kind="area", code="Z", name="Zone", parent=hall)
    b = locations.create_location(actor, kind="site", code="B", name="Plant B")
    return actor, a, area, b


def site_of(leak_id):
    return Leak.select(Leak.site_id).where(Leak.id == leak_id).scalar()


def test_service_create_and_move_set_the_site(places):
    actor, a, area, b = places
    leak = service.create_leak(actor, location=area.id, rate_lpm=Decimal("5"),
                               found_at=dt.datetime(2026, 1, 5, 10))
    assert site_of(leak.id) == a.id
    service.update_leak(actor, leak, expected_version=leak.version, location=b.id)
    assert site_of(leak.id) == b.id


def test_plain_insert_sets_the_site(places, org):
    _actor, a, area, _b = places
    param = database.param
    database.execute_sql(
        f'INSERT INTO "leak" ("organization_id", "tag", "location_id", "found_at", "rate_lpm", '
        f'"method", "gas", "component", "priority", "description", "recommended_action", '
        f'"spare_part", "status", "repaired_by", "verification_note", "source", "version", '
        f'"created_at", "updated_at", "found_by", "device_serial") VALUES ({param}, {param}, '
        f'{param}, {param}, {param}, {param}, {param}, {param}, {param}, {param}, {param}, '
        f'{param}, {param}, {param}, {param}, {param}, {param}, {param}, {param}, {param}, '
        f'{param})',
        (org.id, "T1", area.id, dt.datetime(2026, 1, 1), Decimal("1"), "device", "air",
         "other", 2, "", "", "", "open", "", "", "import", 1, dt.datetime(2026, 1, 1),
         dt.datetime(2026, 1, 1), "", ""))
    leak_id = Leak.select(Leak.id).where(Leak.tag == "T1").scalar()
    assert site_of(leak_id) == a.id


def test_a_changed_location_path_moves_its_leaks(places, org):
    """Locations are not moved today; should a path ever change, its leaks follow."""
    actor, a, area, b = places
    leak = service.create_leak(actor, location=area.id, rate_lpm=Decimal("5"),
                               found_at=dt.datetime(2026, 1, 5, 10))
    from leakhub.locations.models import Location

    Location.update(path=f"{b.path}{area.id}/").where(Location.id == area.id).execute()
    assert site_of(leak.id) == b.id
