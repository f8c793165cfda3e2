"""The organization's locations as the import sees them: looked up by code or name path,
the kind a created location gets at its depth, and the warnings about paths whose first part
names a building or area instead of a site."""
from __future__ import annotations

import collections

from flask_babel import gettext as _

from ..locations import service as locations
from ..locations.models import Location


class LocationIndex:
    """All locations of the organization, looked up by code or name path."""

    def __init__(self, actor):
        self.children: dict[int, dict[str, Location]] = collections.defaultdict(dict)
        self.by_code: dict[str, list[Location]] = collections.defaultdict(list)
        self.by_name: dict[str, list[Location]] = collections.defaultdict(list)
        for loc in locations.all_locations(actor):
            self.add(loc)

    def add(self, loc: Location) -> None:
        kids = self.children[loc.parent_id or 0]
        kids.setdefault("c:" + loc.code.strip().lower(), loc)
        kids.setdefault("n:" + loc.name.strip().lower(), loc)
        self.by_code[loc.code.strip().lower()].append(loc)
        self.by_name[loc.name.strip().lower()].append(loc)

    def child(self, parent_id: int, part: str) -> Location | None:
        kids = self.children.get(parent_id or 0, {})
        p = part.strip().lower()
        return kids.get("c:" + p) or kids.get("n:" + p)

    def resolve(self, parts: list[str]) -> tuple[Location | None, int]:
        """(location, 0) or (deepest found ancestor or None, index of the first missing part)."""
        parent = None
        for i, part in enumerate(parts):
            loc = self.child(parent.id if parent else 0, part)
            if loc is None:
                if i == 0 and len(parts) == 1:
                    hits = self.by_code.get(part.lower()) or self.by_name.get(part.lower())
                    if hits and len(hits) == 1:
                        return hits[0], -1
                return parent, i
            parent = loc
        return parent, -1


def split_path(text: str) -> list[str]:
    for sep in (" > ", ">", "/", "\\"):
        if sep in text:
            return [p.strip() for p in text.split(sep) if p.strip()]
    return [text.strip()] if text.strip() else []


KIND_AT_DEPTH = ("site", "building")


def kind_at(depth: int) -> str:
    return KIND_AT_DEPTH[depth] if depth < len(KIND_AT_DEPTH) else "area"


def site_warnings(index: LocationIndex, missing_sites: dict, creating: bool) -> list[str]:
    """A path whose first part is no site but names a building or area: the columns are
    probably mapped in the wrong order ("Halle 3 / Montage / Werk Süd"). Said before anything
    is written, most of all before "create missing locations" makes Halle 3 a site."""
    out = []
    for key, name in missing_sites.items():
        hits = [loc for loc in index.by_name.get(key, []) + index.by_code.get(key, [])
                if loc.kind != "site"]
        if not hits:
            continue
        loc = hits[0]
        if creating:
            out.append(_("“%(name)s” would be created as a new site, but there is a %(kind)s of "
                         "that name (%(loc)s). Check which columns are mapped to site, building "
                         "and area.", name=name, kind=_(loc.kind), loc=loc.label))
        else:
            out.append(_("“%(name)s” is not a site, but there is a %(kind)s of that name "
                         "(%(loc)s). Check which columns are mapped to site, building and area.",
                         name=name, kind=_(loc.kind), loc=loc.label))
        if len(out) >= 20:
            break
    return out
