"""PDF reports read dates in the user's language (issue 14): the survey's period, repair
dates and the generation time as dd.mm.yyyy in German, ISO in English."""
import datetime as dt
import re
from decimal import Decimal as D

import pytest

from leakhub.leaks import service as leaks
from leakhub.surveys import service as surveys

from support.reporting_data import BASE, make_tree, new_leak, pdf_text


@pytest.fixture
def survey(actor):
    tree = make_tree(actor)
    s = surveys.create_survey(actor, name="Frühjahr 2024", period_start=dt.date(2024, 3, 1),
                              period_end=dt.date(2024, 3, 31), scope=[tree["site"].id])
    b = new_leak(actor, tree["hall"], tag="4712", survey=s.id, rate_lpm=D("35.5"))
    leaks.change_status(actor, b, "repaired", repaired_at=dt.date(2024, 3, 20))
    return s


def _report(actor, survey, login, language):
    actor.user.language = language
    actor.user.save()
    resp = login(actor.user).get(f"/surveys/{survey.id}/report.pdf", base_url=BASE)
    assert resp.status_code == 200
    return pdf_text(resp.data)


def test_german_user_gets_german_dates(actor, survey, login):
    assert not (actor.organization.language or "en").startswith("de")  # the user's, not org's
    text = _report(actor, survey, login, "de")
    assert b"(Zeitraum)" in text and b"(01.03.2024 \\226 31.03.2024)" in text  # en dash
    assert b"2024-03-01" not in text and b"2024-03-31" not in text
    assert b"20.03.2024" in text and b"2024-03-20" not in text
    assert re.search(rb"\d\d\.\d\d\.\d{4} \d\d:\d\d", text)          # generated at


def test_english_user_gets_iso_dates(actor, survey, login):
    text = _report(actor, survey, login, "en")
    assert b"Period" in text and b"2024-03-01" in text and b"2024-03-31" in text
    assert b"2024-03-20" in text and b"01.03.2024" not in text
