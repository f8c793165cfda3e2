"""`/dashboard`: open leaks and realised savings; charts drawn in the browser from JSON."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_babel import gettext as _

from .. import authz
from ..core.pages import member_required
from ..identity.login import current_actor
from ..leaks import service as leaks
from . import service

bp = Blueprint("dashboard", __name__)


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
    return render_template("dashboard/index.html", d=d, data=data,
                           site_names=[service.site_label(s, labels) for s in d.by_site],
                           component_labels=leaks.COMPONENT_LABELS)
