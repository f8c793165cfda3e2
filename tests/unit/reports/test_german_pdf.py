"""The survey PDF read back in German (issue 14): its headings and table headers are the
German catalog's, none of the English ones is left; a repaired leak's status and component
are German words too."""
import datetime as dt
from decimal import Decimal as D

import pytest
from flask_babel import force_locale
from flask_babel import gettext as _

from leakhub.leaks import service as leaks
from leakhub.surveys import service as surveys

from support.reporting_data import BASE, make_tree, new_leak, pdf_text

# Texts of reports/pdf.py (long enough not to be part of some other word).
HEADINGS = ["Summary", "Repair status", "Energy settings used", "Open leaks",
            "Repaired: expected savings", "Control factor", "Valid from"]


def pdf_string(text: str) -> bytes:
    """How reportlab writes a text with a standard font: WinAnsi bytes, non-ASCII as octal."""
    out = b""
    for byte in text.encode("cp1252"):
        out += b"\\%03o" % byte if byte > 127 else bytes([byte])
    return out


@pytest.fixture
def survey(actor):
    tree = make_tree(actor)
    s = surveys.create_survey(actor, name="Frühjahr 2024", period_start=dt.date(2024, 3, 1),
                              scope=[tree["site"].id])
    leak = new_leak(actor, tree["hall"], tag="4712", survey=s.id, rate_lpm=D("35.5"),
                    component="condensate_trap")
    leaks.change_status(actor, leak, "repaired", repaired_at=dt.date(2024, 3, 20))
    return s


def test_survey_pdf_reads_german(app, actor, survey, login):
    actor.user.language = "de"
    actor.user.save()
    resp = login(actor.user).get(f"/surveys/{survey.id}/report.pdf", base_url=BASE)
    assert resp.status_code == 200
    text = pdf_text(resp.data)
    with app.test_request_context(), force_locale("de"):
        german = {english: _(english) for english in HEADINGS}
    for english, translated in german.items():
        assert translated != english, english
        assert pdf_string(translated) in text, (english, translated)
        assert b"(" + english.encode() + b")" not in text, english
    assert pdf_string("Kondensatableiter") in text and pdf_string("repariert") in text
