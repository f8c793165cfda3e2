from __future__ import annotations

import peewee as pw

from ..core.db import OrgScoped, utcnow
from ..identity.models import User
from ..locations.models import Location
from ..orgs.models import Organization
from ..surveys.models import Survey

# Component categories (DOE tip sheet and practice, see DOMAIN.md). Keys are stored.
COMPONENTS = ("coupling", "hose", "tube", "fitting", "pipe_joint", "quick_disconnect", "frl_unit",
              "condensate_trap", "valve", "flange", "cylinder", "other")
# "orifice" and "detector": the rate is calculated from `rate_inputs` (leaks/calc.py).
METHODS = ("device", "estimate", "calculated", "orifice", "detector")
CALCULATED_METHODS = ("orifice", "detector")
# MEASUR estimate classes in cfm (DOMAIN.md); 1 cfm ≈ 28.317 l/min.
ESTIMATE_CLASSES_CFM = {"minimal": "0.2", "small": "0.8", "medium": "3", "large": "5",
                        "severe": "10"}
PRIORITIES = {1: "high", 2: "medium", 3: "low"}
STATUSES = ("to_review", "open", "repair_planned", "repaired", "verified", "deferred",
            "not_a_leak")
OPEN_STATUSES = ("open", "repair_planned", "deferred")
FIXED_STATUSES = ("repaired", "verified")


class Leak(OrgScoped):
    """One leak, tagged on site with its organization-unique `tag`. Cost/energy/CO2 are not
    stored: `rate_lpm` is, and leaks/calc.py derives the rest with the settings valid at
    `found_at` (locations.settings)."""

    organization = pw.ForeignKeyField(Organization, backref="leaks", on_delete="CASCADE")
    tag = pw.CharField(max_length=32)
    tag_number = pw.BigIntegerField(null=True)  # int(tag) when the tag is all digits
    location = pw.ForeignKeyField(Location, backref="leaks", on_delete="RESTRICT")
    # The site of `location` (first id of its path), for grouping by site without a join.
    # Set by database triggers on every write (migration 0010); never written by the app.
    site_id = pw.IntegerField(null=True)
    survey = pw.ForeignKeyField(Survey, null=True, backref="leaks", on_delete="SET NULL")
    found_at = pw.DateTimeField(default=utcnow)
    found_by_user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    found_by = pw.CharField(max_length=200, default="")
    device_serial = pw.CharField(max_length=64, default="")
    method = pw.CharField(max_length=16, default="device")
    estimate_class = pw.CharField(max_length=16, null=True)
    rate_lpm = pw.DecimalField(max_digits=12, decimal_places=3, auto_round=True)
    rate_low_lpm = pw.DecimalField(max_digits=12, decimal_places=3, null=True, auto_round=True)
    rate_high_lpm = pw.DecimalField(max_digits=12, decimal_places=3, null=True, auto_round=True)
    # The inputs of a calculated rate (method "orifice" or "detector") as JSON text, else "".
    rate_inputs = pw.TextField(default="")
    pressure_bar = pw.DecimalField(max_digits=6, decimal_places=2, null=True, auto_round=True)
    gas = pw.CharField(max_length=32, default="air")
    component = pw.CharField(max_length=24, default="other")
    priority = pw.SmallIntegerField(default=2)
    description = pw.TextField(default="")
    recommended_action = pw.TextField(default="")
    spare_part = pw.CharField(max_length=200, default="")
    status = pw.CharField(max_length=16, default="open")
    due_date = pw.DateField(null=True)
    # Repair follow-up (migration 0019): who repairs it, the maintenance order number.
    assignee = pw.ForeignKeyField(User, null=True, on_delete="SET NULL",
                                  backref="assigned_leaks", column_name="assignee_id")
    order_number = pw.CharField(max_length=64, default="")
    repaired_at = pw.DateField(null=True)
    repaired_by = pw.CharField(max_length=200, default="")
    repair_cost = pw.DecimalField(max_digits=12, decimal_places=2, null=True, auto_round=True)
    verified_at = pw.DateField(null=True)
    verification_note = pw.TextField(default="")
    # The rate re-measured when the repair was verified (None: not re-measured). Savings are
    # then rate_lpm − after_lpm (leaks/calc.py saved_lpm), else the whole rate_lpm.
    after_lpm = pw.DecimalField(max_digits=12, decimal_places=3, null=True, auto_round=True)
    previous_leak = pw.ForeignKeyField("self", null=True, on_delete="SET NULL")
    source = pw.CharField(max_length=16, default="manual")  # manual | import | device | demo
    # The UUID a tablet gave the leak when it was recorded offline ("" otherwise): unique per
    # organization when set (migration 0017), so a replayed sync finds it instead of a copy.
    client_id = pw.CharField(max_length=36, default="")
    # The pin on the location's floor plan (migration 0018): fractions 0..1 of the plan's
    # width and height, and the plan version it was placed on (None: not placed).
    plan_x = pw.FloatField(null=True)
    plan_y = pw.FloatField(null=True)
    plan_version = pw.IntegerField(null=True)
    version = pw.IntegerField(default=1)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)

    AUDIT_TYPE = "leak"
    AUDIT_SKIP = ("updated_at", "site_id")

    class Meta:
        # Migrations create the indexes (0008 and 0010 add sort and dashboard indexes).
        indexes = ((("organization", "tag"), True),
                   (("organization", "tag_number"), False),
                   (("organization", "status"), False),
                   (("organization", "location"), False),
                   (("organization", "survey"), False),
                   (("organization", "found_at", "id", "location", "survey"), False),
                   (("organization", "priority"), False),
                   (("organization", "component"), False))

    def __str__(self):
        return self.tag


class LeakStatusChange(OrgScoped):
    """History of a leak's status: every change, who, when, with an optional note. Kept apart
    from the audit trail, which may be pruned by retention."""

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    leak = pw.ForeignKeyField(Leak, backref="status_changes", on_delete="CASCADE")
    at = pw.DateTimeField(default=utcnow)
    from_status = pw.CharField(max_length=16, null=True)
    to_status = pw.CharField(max_length=16)
    actor_label = pw.CharField(max_length=254, default="")
    user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    note = pw.TextField(default="")

    AUDIT_TYPE = "leak_status_change"

    class Meta:
        table_name = "leak_status_change"
        indexes = ((("organization", "leak", "at"), False),)


class DetectorRateRow(OrgScoped):
    """One row of the organization's detector table, entered from its instrument's
    documentation: at `pressure_bar` (gauge) and `distance_m` a reading of `db_level` dB
    means `rate_lpm` l/min (see calc.detector_rate_lpm for the interpolation)."""

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    pressure_bar = pw.DecimalField(max_digits=8, decimal_places=3, auto_round=True)
    distance_m = pw.DecimalField(max_digits=8, decimal_places=3, auto_round=True)
    db_level = pw.DecimalField(max_digits=8, decimal_places=2, auto_round=True)
    rate_lpm = pw.DecimalField(max_digits=12, decimal_places=3, auto_round=True)

    AUDIT_TYPE = "detector_rate_row"

    class Meta:
        table_name = "detector_rate_row"
        indexes = ((("organization", "pressure_bar", "distance_m", "db_level"), True),)
