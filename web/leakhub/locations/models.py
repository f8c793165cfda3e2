from __future__ import annotations

import peewee as pw

from ..core.db import OrgScoped, utcnow
from ..orgs.models import Organization

KINDS = ("site", "building", "area")
# Which kind may hang below which (None: a root).
PARENT_KINDS = {"site": (None,), "building": ("site",), "area": ("building", "area")}


class Location(OrgScoped):
    """A node of the location tree. `path` is the materialized path of ids including the own
    id ("/12/34/56/"), so a subtree is `path LIKE '/12/%'` (indexed) — used by the leak list
    filter and by grant inheritance. The path is set on insert; `parent` does not change
    afterwards (moving a subtree is not offered)."""

    organization = pw.ForeignKeyField(Organization, backref="locations", on_delete="CASCADE")
    parent = pw.ForeignKeyField("self", null=True, backref="children", on_delete="RESTRICT")
    kind = pw.CharField(max_length=16)
    code = pw.CharField(max_length=40)
    name = pw.CharField(max_length=200)
    path = pw.CharField(max_length=255, default="")
    depth = pw.SmallIntegerField(default=0)
    notes = pw.TextField(default="")
    version = pw.IntegerField(default=1)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)

    AUDIT_TYPE = "location"
    AUDIT_SKIP = ("updated_at",)

    class Meta:
        indexes = ((("organization", "path"), False),
                   (("organization", "parent"), False),
                   (("organization", "code"), False))

    @classmethod
    def create(cls, **query):
        """Insert, then complete the materialized path from the new id (same transaction:
        the audit writer opens it and snapshots the row after this returns)."""
        obj = super().create(**query)
        parent_path = obj.parent.path if obj.parent_id else "/"
        obj.path = f"{parent_path}{obj.id}/"
        obj.depth = obj.path.count("/") - 2
        cls.update(path=obj.path, depth=obj.depth).where(cls.id == obj.id).execute()
        return obj

    @property
    def ancestor_ids(self) -> list[int]:
        return [int(p) for p in self.path.strip("/").split("/") if p]

    @property
    def site_id(self) -> int | None:
        ids = self.ancestor_ids
        return ids[0] if ids else None

    @property
    def label(self) -> str:
        return self.label_of(self.code, self.name)

    @staticmethod
    def label_of(code: str, name: str) -> str:
        return f"{code} · {name}" if code else name

    def __str__(self):
        return self.label


class EnergySettings(OrgScoped):
    """Energy and price parameters valid from `valid_from` on. `site` None: the organization's
    defaults; a site row overrides only the fields it sets (None = inherit). Versioned by
    validity date so last year's report keeps last year's price."""

    organization = pw.ForeignKeyField(Organization, backref="energy_settings",
                                      on_delete="CASCADE")
    site = pw.ForeignKeyField(Location, null=True, backref="energy_settings",
                              on_delete="CASCADE")
    valid_from = pw.DateField()
    price_per_kwh = pw.DecimalField(max_digits=12, decimal_places=5, null=True,
                                    auto_round=True)
    currency = pw.CharField(max_length=3, null=True)
    specific_power = pw.DecimalField(max_digits=8, decimal_places=3, null=True, auto_round=True)
    operating_hours = pw.IntegerField(null=True)
    co2_factor = pw.DecimalField(max_digits=8, decimal_places=4, null=True, auto_round=True)
    price_per_m3 = pw.DecimalField(max_digits=12, decimal_places=5, null=True, auto_round=True)
    control_factor = pw.DecimalField(max_digits=5, decimal_places=3, null=True, auto_round=True)
    note = pw.CharField(max_length=200, default="")
    version = pw.IntegerField(default=1)
    created_at = pw.DateTimeField(default=utcnow)

    AUDIT_TYPE = "energy_settings"

    class Meta:
        table_name = "energy_settings"
        indexes = ((("organization", "site", "valid_from"), False),)

    VALUE_FIELDS = ("price_per_kwh", "currency", "specific_power", "operating_hours",
                    "co2_factor", "price_per_m3", "control_factor")
