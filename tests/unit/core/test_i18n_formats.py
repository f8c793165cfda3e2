"""Issue 14, phase 2: German formats on screen (dd.mm.yyyy, HH:MM in the organization's time
zone, 1.234,5, 1.234,56 €), English ones kept; input values that read back unchanged."""
import datetime as dt
from decimal import Decimal as D

import pytest

from leakhub.authz import Actor
from leakhub.core.templating import FILTERS
from leakhub.leaks import service
from leakhub.locations import service as loc


@pytest.mark.parametrize("lang,expected", [
    ("de", {"dt": "05.03.2026 13:07", "date": "05.03.2026", "num": "1.234,5",
            "money": "1.234,56\xa0€", "input": "1234,5", "iso": "2026-03-05"}),
    ("en", {"dt": "2026-03-05 13:07", "date": "2026-03-05", "num": "1,234.5",
            "money": "€1,234.56", "input": "1234.5", "iso": "2026-03-05"}),
])
def test_filters_per_language(app, lang, expected):
    with app.test_request_context("/", headers={"Accept-Language": lang}):
        when = dt.datetime(2026, 3, 5, 13, 7)   # naive UTC; no organization: shown in UTC
        assert FILTERS["localdt"](when) == expected["dt"]
        assert FILTERS["localdt"](when, "%Y-%m-%d") == expected["date"]
        assert FILTERS["date"](when.date()) == expected["date"]
        assert FILTERS["isodate"](when.date()) == expected["iso"]   # <input type=date> value
        assert FILTERS["num"](D("1234.5")) == expected["num"]
        assert FILTERS["money"](D("1234.56"), "EUR") == expected["money"]
        assert FILTERS["input_num"](D("1234.50")) == expected["input"]


def test_german_user_sees_german_dates_in_the_organizations_zone(org, make_user, login):
    user = make_user("admin")
    user.language = "de"
    user.save()
    a = Actor(organization=org, kind="user", user=user)
    site = loc.create_location(a, kind="site", code="BER", name="Werk Berlin")
    # found_at is naive UTC: 2024-07-01 22:30 UTC is 2 July 00:30 in Berlin (summer time).
    leak = service.create_leak(a, location=site.id, found_at=dt.datetime(2024, 7, 1, 22, 30),
                               rate_lpm=D("1234.5"), due_date=dt.date(2024, 8, 31))
    page = login(user).get(f"/leaks/{leak.id}").get_data(as_text=True)
    assert "02.07.2024 00:30" in page and "31.08.2024" in page
    assert "1.234,5 l/min" in page
    assert "2024-07-01" not in page and "2024-08-31" not in page   # Activity too
    assert "Leckagerate" in page and "rate_lpm" not in page and "Erstellt" in page
