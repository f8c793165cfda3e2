"""The dashboard's charts in the user's language (issue 14): month labels as words ("März
2024" in German, "Mar 2024" in English, never ISO "2024-03"), and the script formats the axis
numbers in the page's language (Chart.js `locale`), not the browser's."""
import datetime as dt
import json
import re
from pathlib import Path

import pytest
from babel.dates import format_date

from support.reporting_data import BASE

JS = Path(__file__).resolve().parents[3] / "web" / "leakhub" / "static" / "js" / "dashboard.js"


def _payload(client) -> dict:
    html = client.get("/dashboard", base_url=BASE).get_data(as_text=True)
    start = html.index('id="dashboard-data">') + len('id="dashboard-data">')
    return json.loads(html[start:html.index("</script>", start)])


@pytest.mark.parametrize("language", ["de", "en"])
def test_month_labels_follow_the_users_language(actor, login, language):
    actor.user.language = language
    actor.user.save()
    months = _payload(login(actor.user))["trend"]["months"]
    assert len(months) >= 12
    assert not any(re.fullmatch(r"\d{4}-\d\d", m) for m in months), months
    this_month = dt.date.today().replace(day=1)
    assert months[-1] == format_date(this_month, "MMM yyyy", locale=language)
    if language == "de":
        german = {format_date(dt.date(2024, m, 1), "MMM", locale="de") for m in range(1, 13)}
        assert "März" in german and all(m.split(" ")[0] in german for m in months)


def test_axis_numbers_use_the_pages_language():
    script = JS.read_text()
    assert 'document.documentElement.lang' in script
    assert re.search(r"common = \{[^}]*locale: lang", script)
