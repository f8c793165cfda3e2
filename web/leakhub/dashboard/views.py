"""`/dashboard`: open leaks and realised savings; charts drawn in the browser from JSON."""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, render_template
from flask_babel import format_date
from flask_babel import gettext as _

from .. import authz
from ..core.pages import member_required
from ..core.templating import org_tz
from ..identity.login import current_actor
from ..leaks import service as leaks
from . import service

bp = Blueprint("dashboard", __name__)


def month_label(month: str) -> str:
    """A chart's month ("2024-03") in the page's language: "März 2024", "Okt. 2024" in
    German, "Mar 2024" in English. (The axis numbers: static/js/dashboard.js formats them in
    the page's language.)"""
    return format_date(dt.date(int(month[:4]), int(month[5:7]), 1), "MMM yyyy")


@bp.route("/dashboard")
@member_required
def index():
    actor = current_actor()
    authz.require(actor, "view")
    d = service.compute(actor)
    labels = {
        "found": _("found"), "repaired": _("repaired"),
        "open_cost": _("open leaks: cost per year"),
        "saved_cost": _("repaired: expected savings per year"),
        "trend": _("Leaks found and repaired per month"),
        "sites": _("Cost per year by site"), "components": _("Open leaks by component"),
        "unshared_site": _("Site not shared with you"), "no_site": _("No site"),
    }
    data = service.chart_data(d, component_labels=leaks.COMPONENT_LABELS, labels=labels)
    data["trend"]["months"] = [month_label(m) for m in data["trend"]["months"]]
    return render_template("dashboard/index.html", d=d, data=data,
                           site_names=[service.site_label(s, labels) for s in d.by_site],
                           component_labels=leaks.COMPONENT_LABELS,
                           overdue=leaks.overdue_count(actor, tzname=org_tz()))
