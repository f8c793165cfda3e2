"""How each kind of organization data relates to locations and surveys, which is what
grants are given on. `scope()` reads this; a test fails for an OrgScoped model missing here."""
from __future__ import annotations

from dataclasses import dataclass

from ..audit.models import AuditEntry  # noqa: F401  (not OrgScoped; listed for clarity)
from ..dashboard.models import LeakDaily, LeakRepairedDaily
from ..devices.models import Device, IngestReceipt
from ..exports.models import ExportJob
from ..identity.models import User
from ..imports.models import ImportPreset
from ..leaks.models import DetectorRateRow, Leak, LeakStatusChange
from ..locations.models import EnergySettings, Location
from ..photos.models import Photo
from ..plans.models import FloorPlan
from ..security.models import Finding, SecurityEvent
from ..surveys.models import Survey, SurveyScope
from .models import Grant, UserGroup, UserGroupMember


@dataclass(frozen=True)
class Link:
    location: str | None = None   # field holding the location ("id" = the row is a location)
    survey: str | None = None     # field holding the survey ("id" = the row is a survey)
    via: str | None = None        # visible exactly when the row behind this FK is
    # reference data every member may read (edits still need grants/roles)
    members_read: bool = False
    ungranted: bool = False       # never reachable through grants (admin-only data)
    # (scope model, its field naming this row, its location field): the row covers those
    # locations, so a grant on a location inside or above one of them reaches the row to
    # read it and to add to it ("create"), not to edit it (a survey and its site's grant).
    covers: tuple | None = None


def _table() -> dict:
    table = {
        Location: Link(location="id"),
        # Prices and factors: whoever sees a leak must get its cost right, whatever the site.
        EnergySettings: Link(location="site", members_read=True),
        Survey: Link(survey="id", covers=(SurveyScope, "survey", "location")),
        SurveyScope: Link(via="survey"),
        Leak: Link(location="location", survey="survey"),
        LeakStatusChange: Link(via="leak"),
        # The organization's detector table: whoever records a leak reads it; admins edit it.
        DetectorRateRow: Link(members_read=True),
        User: Link(ungranted=True),
        Grant: Link(ungranted=True),
        UserGroup: Link(ungranted=True),
        UserGroupMember: Link(ungranted=True),
        Device: Link(ungranted=True),
        IngestReceipt: Link(ungranted=True),
    }
    table[Photo] = Link(via="leak")
    # A location's floor plan: seen and replaced with the location.
    table[FloorPlan] = Link(location="location")
    # Saved import column mappings: shared in the organization (imports.service presets).
    table[ImportPreset] = Link(members_read=True)
    table[SecurityEvent] = Link(ungranted=True)
    table[Finding] = Link(ungranted=True)
    # Counts of a whole site (`site_id`: the site's location id, 0 for none): readable where
    # the site itself is granted, i.e. every location below it (sites are the tree's roots).
    table[LeakDaily] = Link(location="site_id")
    table[LeakRepairedDaily] = Link(location="site_id")
    # A requested export: any member who may report may have one; the exports service
    # narrows to the requesting user's own rows (downloads only for who asked).
    table[ExportJob] = Link(members_read=True)
    return table


_TABLE: dict | None = None


def link_for(model) -> Link | None:
    global _TABLE
    if _TABLE is None:
        _TABLE = _table()
    link = _TABLE.get(model)
    if link is None or link.ungranted:
        return None
    return link


def known_models() -> set:
    link_for(None)
    return set(_TABLE)
