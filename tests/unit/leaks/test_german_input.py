"""A German number and date typed into the leak forms are stored as meant (issue 14): the
date as dd.mm.yyyy (a browser without a date picker sends the typed text) in the
organization's time zone, numbers with thousands dot and decimal comma. (Imports: see
tests/unit/imports/test_service.py::test_german_excel_csv_cp1252 and
tests/unit/app/test_i18n_language.py.)"""
import datetime as dt
from decimal import Decimal as D

from leakhub.authz import Actor
from leakhub.leaks.models import Leak
from leakhub.locations import service as loc


def test_german_date_and_numbers_in_the_leak_forms(org, make_user, login):
    admin = make_user("admin")
    admin.language = "de"
    admin.save()
    a = Actor(organization=org, kind="user", user=admin)
    site = loc.create_location(a, kind="site", code="BER", name="Werk Berlin")
    c = login(admin)
    resp = c.post("/leaks/new", data={
        "csrf_token": "t", "location": str(site.id), "tag": "77", "found_at": "05.03.2024 10:15",
        "method": "device", "rate_lpm": "1.234,5", "pressure_bar": "6,5", "component": "hose",
        "priority": "2", "gas": "air", "status": "open"})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:3000]
    leak = Leak.get(Leak.tag == "77")
    assert leak.found_at == dt.datetime(2024, 3, 5, 9, 15)      # 10:15 in Berlin (UTC+1)
    assert (leak.rate_lpm, leak.pressure_bar) == (D("1234.5"), D("6.5"))
    resp = c.post(f"/leaks/{leak.id}/status", data={
        "csrf_token": "t", "version": leak.version, "status": "repaired",
        "repaired_at": "20.03.2024", "repair_cost": "1.045,50", "note": "Schlauch getauscht"})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:3000]
    leak = Leak.get_by_id(leak.id)
    assert (leak.status, leak.repaired_at, leak.repair_cost) == (
        "repaired", dt.date(2024, 3, 20), D("1045.50"))
    page = c.get(f"/leaks/{leak.id}").get_data(as_text=True)
    assert "20.03.2024" in page and "1.045,50" in page
