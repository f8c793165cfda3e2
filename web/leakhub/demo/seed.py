"""Realistic demo data for an organization (`leakctl demo seed`).

German plants with buildings and areas, energy settings that changed over time, surveys every
few months, and leaks with the component mix, rates and repair states seen in practice
(DOMAIN.md): FRL units most common; rates from the MEASUR estimate classes and the orifice
table; older leaks mostly repaired and verified, recent ones still open.

Fast enough for 100,000 leaks: leaks and their status history are inserted in chunks and the
audit trail is written in batches through `audit.writer.append(..., batch=...)` — one entry
per created row, all inside one transaction (all or nothing).
"""
from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import dataclass
from decimal import Decimal

from .. import authz
from ..audit import writer
from ..core.db import bulk_insert, database, utcnow
from ..core.errors import Invalid
from ..leaks import calc
from ..leaks.models import Leak, LeakStatusChange
from ..leaks.service import next_tag_number
from ..locations import service as locations
from ..locations.models import Location
from ..orgs.models import Organization
from ..surveys.models import Survey, SurveyScope

CHUNK = 500

PLANTS = ["Werk Stuttgart-Feuerbach", "Werk Wolfsburg Nord", "Werk Ingolstadt", "Werk Regensburg",
          "Werk Dingolfing", "Werk Bremen-Hemelingen", "Werk Zwickau-Mosel", "Werk Sindelfingen",
          "Werk Salzgitter", "Werk Kassel-Baunatal", "Werk Leipzig", "Werk Eisenach",
          "Werk Neckarsulm", "Werk Rastatt", "Werk Emden", "Werk Hannover-Stöcken",
          "Werk Augsburg", "Werk Schweinfurt", "Werk Gifhorn", "Werk Homburg (Saar)"]
BUILDINGS = ["Presswerk", "Karosseriebau", "Lackiererei", "Montage", "Spritzguss",
             "Kompressorstation", "Logistikzentrum", "Werkzeugbau", "Gießerei", "Prüffeld",
             "Endmontage", "Härterei"]
AREAS = ["Linie 1", "Linie 2", "Linie 3", "Druckluftverteilung", "Roboterzelle", "Prüfstand",
         "Versorgungsgang", "Hallenmitte", "Ostseite", "Westseite", "Werkbank", "Anlieferung"]
AUDITORS = ["Druckluft-Audit GmbH", "EnergieEffizienz Süd GmbH", "Kompressoren-Service Weber",
            None]
DEVICES = ["SONAPHONE, SN 204711", "LD 510, SN 12345678", "Fluke ii910, SN 5521003",
           "SDT 340, SN 88120"]
FINDERS = ["M. Schneider", "J. Becker", "A. Wagner", "S. Hoffmann", "K. Schäfer", "T. Koch"]

# Component mix: FRL units are the most common leak location in large leak databases (DOMAIN.md).
COMPONENT_WEIGHTS = {"frl_unit": 22, "coupling": 14, "quick_disconnect": 12, "hose": 11,
                     "fitting": 10, "tube": 7, "valve": 7, "pipe_joint": 5,
                     "condensate_trap": 4, "cylinder": 4, "flange": 2, "other": 2}
DESCRIPTIONS = {
    "frl_unit": ["Wartungseinheit undicht am Druckregler", "Filterschale undicht",
                 "Öler bläst am Schauglas ab"],
    "coupling": ["Kupplung zischt hörbar", "Steckkupplung undicht"],
    "quick_disconnect": ["Schnellkupplung bläst ab", "Schnellkupplung O-Ring verschlissen"],
    "hose": ["Schlauch porös", "Schlauch an Knickstelle undicht", "Spiralschlauch eingerissen"],
    "fitting": ["Verschraubung undicht", "Winkelverschraubung lose"],
    "tube": ["PU-Rohr angescheuert", "Kunststoffrohr am Einschub undicht"],
    "valve": ["Kugelhahn an Spindel undicht", "Magnetventil bläst über Entlüftung ab"],
    "pipe_joint": ["Rohrverbindung undicht", "Pressfitting an Ringleitung undicht"],
    "condensate_trap": ["Kondensatableiter hängt offen", "Zeitgesteuerter Ableiter bläst ab"],
    "cylinder": ["Zylinder Kolbenstangendichtung undicht"],
    "flange": ["Flanschdichtung undicht"],
    "other": ["Blaspistole tropft", "Undichtigkeit an Maschinenanschluss"],
}
ACTIONS = {"frl_unit": ("Wartungseinheit tauschen", "Wartungseinheit FRL 1/2\""),
           "coupling": ("Kupplung erneuern", "Sicherheitskupplung NW 7,2"),
           "quick_disconnect": ("Schnellkupplung tauschen", "Schnellkupplung NW 7,2"),
           "hose": ("Schlauch ersetzen", "PU-Schlauch 8x6, 10 m"),
           "fitting": ("Verschraubung nachziehen oder tauschen", "Steckverschraubung G1/4"),
           "tube": ("Rohrstück ersetzen", "PA-Rohr 12x10"),
           "valve": ("Ventil abdichten", "Kugelhahn DN 25"),
           "pipe_joint": ("Verbindung neu abdichten", "Pressfitting 28 mm"),
           "condensate_trap": ("Niveaugesteuerten Ableiter einbauen", "Kondensatableiter"),
           "cylinder": ("Zylinder abdichten", "Dichtungssatz Zylinder Ø50"),
           "flange": ("Flanschdichtung erneuern", "Flanschdichtung DN 50"),
           "other": ("Prüfen und abdichten", "")}
# MEASUR estimate classes with how often each occurs in a typical survey.
CLASS_WEIGHTS = {"minimal": 28, "small": 36, "medium": 22, "large": 9, "severe": 5}
# Orifice reference at 6 bar: 1 mm ≈ 1.2 l/s (CS Instruments LD 300 manual, DOMAIN.md);
# flow scales with the orifice area.
ORIFICE_LPM_1MM = Decimal("72")
ORIFICES_MM = [Decimal("0.3"), Decimal("0.5"), Decimal("0.8"), Decimal("1"), Decimal("1.5"),
               Decimal("2")]


class SeedError(Invalid):
    """One readable line for the CLI."""


@dataclass
class SeedResult:
    organization: str
    sites: int
    locations: int
    surveys: int
    leaks: int
    status_changes: int
    audit_entries: int
    seconds: float


def _weighted(rng, weights: dict):
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _rate(rng) -> tuple[str, str | None, Decimal, Decimal | None, Decimal | None]:
    """(method, estimate class, rate, low, high) in l/min."""
    r = rng.random()
    if r < 0.15:
        cls = _weighted(rng, CLASS_WEIGHTS)
        rate = calc.estimate_rate_lpm(cls)
        return "estimate", cls, rate.quantize(Decimal("0.001")), (rate * Decimal("0.5")).quantize(
            Decimal("0.001")), (rate * Decimal("1.5")).quantize(Decimal("0.001"))
    if r < 0.22:
        d = rng.choice(ORIFICES_MM)
        rate = ORIFICE_LPM_1MM * d * d
        return "calculated", None, rate.quantize(Decimal("0.001")), None, None
    cls = _weighted(rng, CLASS_WEIGHTS)
    rate = calc.estimate_rate_lpm(cls) * Decimal(str(round(rng.uniform(0.55, 1.45), 3)))
    return "device", None, rate.quantize(Decimal("0.1")), None, None


def _status_path(rng, age_days: int) -> list[str]:
    """A plausible status history; older leaks are further along."""
    r = rng.random()
    if r < 0.03:
        return ["open", "not_a_leak"]
    p_done = min(0.85, 0.15 + age_days / 500)
    r = rng.random()
    if r < p_done * 0.6:
        return ["open", "repair_planned", "repaired", "verified"] if rng.random() < 0.6 else \
            ["open", "repaired", "verified"]
    if r < p_done:
        return (["open", "repair_planned", "repaired"] if rng.random() < 0.5
                else ["open", "repaired"])
    r = rng.random()
    if r < 0.25:
        return ["open", "repair_planned"]
    if r < 0.33:
        return ["open", "deferred"]
    if r < 0.36 and age_days < 60:
        return ["to_review"]
    return ["open"]


def _locations(actor, rng, n_sites: int) -> tuple[list[Location], dict[int, list[Location]]]:
    """Sites with buildings and areas (through the writer: a few hundred rows)."""
    existing = {loc.code for loc in locations.sites(actor)}
    sites, areas_by_site = [], {}
    names = PLANTS[:]
    rng.shuffle(names)
    for i in range(n_sites):
        n = len(existing) + i + 1
        code = f"W{n:02d}"
        while code in existing:
            n += 1
            code = f"W{n:02d}"
        name = names[i % len(names)] + ("" if i < len(names) else f" {i // len(names) + 1}")
        site = locations.create_location(actor, kind="site", code=code, name=name)
        sites.append(site)
        areas = []
        for b, bname in enumerate(rng.sample(BUILDINGS, rng.randint(3, 6)), start=1):
            building = locations.create_location(actor, kind="building", code=f"H{b}",
                                                 name=bname, parent=site)
            for a, aname in enumerate(rng.sample(AREAS, rng.randint(2, 5)), start=1):
                areas.append(locations.create_location(actor, kind="area", code=f"H{b}.{a}",
                                                       name=aname, parent=building))
        areas_by_site[site.id] = areas
    return sites, areas_by_site


def _settings(actor, sites, today):
    """Organization prices that changed over time and one site with its own contract."""
    start = dt.date(today.year - 2, 1, 1)
    have = {r.valid_from for r in locations.list_settings(actor, None)}
    rows = [(start, "0.2450", "0.434"), (dt.date(today.year - 1, 1, 1), "0.2100", "0.380"),
            (dt.date(today.year, 1, 1), "0.1900", "0.363")]
    for valid_from, price, co2 in rows:
        if valid_from in have:
            continue
        locations.create_settings(actor, valid_from=valid_from, price_per_kwh=Decimal(price),
                                  currency="EUR", specific_power=Decimal("6.4"),
                                  operating_hours=6000, co2_factor=Decimal(co2),
                                  control_factor=Decimal("0.97"),
                                  note="Demo: Stromliefervertrag, CO2 nach UBA")
    if sites:
        locations.create_settings(actor, site=sites[0], valid_from=start,
                                  price_per_kwh=Decimal("0.1750"), operating_hours=8760,
                                  control_factor=Decimal("0.68"),
                                  note="Demo: Dreischichtbetrieb, Last/Leerlauf-Regelung")


def _surveys(actor, rng, sites, today) -> dict[int, list[Survey]]:
    """Every site surveyed about every six months over the last two years."""
    out = {}
    for site in sites:
        rows = []
        first = today - dt.timedelta(days=730 - rng.randint(0, 40))
        k = 0
        day = first
        while day <= today - dt.timedelta(days=7):
            k += 1
            end = min(day + dt.timedelta(days=rng.randint(2, 10)), today)
            auditor = rng.choice(AUDITORS)
            season = "Frühjahr" if day.month <= 6 else "Herbst"
            survey = writer.create(
                actor, Survey, name=f"{season} {day.year} – {site.name}", period_start=day,
                period_end=end, auditor_company=auditor or "", device=rng.choice(DEVICES),
                status="completed" if end < today else "in_progress",
                coverage_percent=rng.choice([80, 90, 100, 100]),
                notes="" if auditor else "Interne Begehung")
            writer.create(actor, SurveyScope, survey=survey, location=site)
            rows.append(survey)
            day = day + dt.timedelta(days=rng.randint(160, 200))
        out[site.id] = rows
    return out


def seed(organization: Organization, *, leaks: int, sites: int, rng_seed: int | None = None,
         progress=None, today: dt.date | None = None) -> SeedResult:
    """Fill `organization` with demo data. `progress(n)` is called after each chunk of leaks."""
    if not 0 <= leaks <= 2_000_000:
        raise SeedError("--leaks must be between 0 and 2,000,000")
    if not 1 <= sites <= 500:
        raise SeedError("--sites must be between 1 and 500")
    started = time.perf_counter()
    rng = random.Random(rng_seed)
    today = today or utcnow().date()
    actor = authz.Actor.system(organization, label="leakctl demo seed")
    authz.require(actor, "create")
    audit_count = 0
    with database.atomic():
        writer.begin(actor)
        site_rows, areas_by_site = _locations(actor, rng, sites)
        _settings(actor, site_rows, today)
        surveys_by_site = _surveys(actor, rng, site_rows, today)
        n_locations = authz.scope(actor, Location).count()
        n_surveys = sum(len(v) for v in surveys_by_site.values())

        first_tag = next_tag_number(actor)
        done = 0
        changes_total = 0
        now = utcnow()
        while done < leaks:
            size = min(CHUNK, leaks - done)
            rows, paths = [], []
            for i in range(size):
                site = rng.choice(site_rows)
                survey = rng.choice(surveys_by_site[site.id])
                area = rng.choice(areas_by_site[site.id])
                span = max(0, ((survey.period_end or survey.period_start)
                               - survey.period_start).days)
                found = dt.datetime.combine(
                    survey.period_start + dt.timedelta(days=rng.randint(0, span)),
                    dt.time(rng.randint(6, 17), rng.randint(0, 59)))
                component = _weighted(rng, COMPONENT_WEIGHTS)
                method, cls, rate, low, high = _rate(rng)
                age = (today - found.date()).days
                path = _status_path(rng, age)
                status = path[-1]
                priority = 1 if rate >= 140 else (2 if rate >= 40 else 3)
                if rng.random() < 0.15:
                    priority = rng.choice([1, 2, 3])
                action, part = ACTIONS[component]
                tag = first_tag + done + i
                rec = {
                    "organization": organization.id, "tag": str(tag), "tag_number": tag,
                    "location": area.id, "survey": survey.id, "found_at": found,
                    "found_by_user": None, "found_by": rng.choice(FINDERS),
                    "device_serial": survey.device.split("SN ")[-1] if method == "device" else "",
                    "method": method, "estimate_class": cls, "rate_lpm": rate,
                    "rate_low_lpm": low, "rate_high_lpm": high,
                    "pressure_bar": Decimal(str(round(rng.uniform(5.5, 7.5), 1))),
                    "gas": "air", "component": component, "priority": priority,
                    "description": rng.choice(DESCRIPTIONS[component]),
                    "recommended_action": action, "spare_part": part, "status": status,
                    "due_date": None, "repaired_at": None, "repaired_by": "",
                    "repair_cost": None, "verified_at": None, "verification_note": "",
                    "previous_leak": None, "source": "demo", "version": 1,
                    "created_at": now, "updated_at": now,
                }
                # Dates along the path, never in the future.
                t = found
                stamps = [(None, path[0], found)]
                for prev, nxt in zip(path, path[1:], strict=False):
                    t = min(t + dt.timedelta(days=rng.randint(1, 60), hours=rng.randint(0, 8)),
                            dt.datetime.combine(today, dt.time(16, 0)))
                    stamps.append((prev, nxt, t))
                    if nxt == "repair_planned":
                        rec["due_date"] = (t + dt.timedelta(days=rng.choice([7, 14, 30]))).date()
                    elif nxt == "repaired":
                        rec["repaired_at"] = t.date()
                        rec["repaired_by"] = rng.choice(["Instandhaltung", "Fa. Druckluft Meyer",
                                                         "Schichtelektriker"])
                        rec["repair_cost"] = Decimal(rng.randint(8, 260)) + Decimal("0.50")
                    elif nxt == "verified":
                        rec["verified_at"] = t.date()
                        rec["verification_note"] = "Nachmessung: keine Leckage"
                rows.append(rec)
                paths.append(stamps)
            bulk_insert(Leak, rows)
            ids = dict(Leak.select(Leak.tag_number, Leak.id)
                       .where(Leak.organization == organization.id,
                              Leak.tag_number.between(first_tag + done,
                                                      first_tag + done + size - 1)).tuples())
            history, batch = [], []
            for rec, stamps in zip(rows, paths, strict=False):
                leak_id = ids[rec["tag_number"]]
                batch.append({"action": "create", "entity_type": "leak", "entity_id": leak_id,
                              "changes": _create_changes(rec, leak_id)})
                for prev, nxt, at in stamps:
                    history.append({"organization": organization.id, "leak": leak_id, "at": at,
                                    "from_status": prev, "to_status": nxt,
                                    "actor_label": rec["found_by"] if prev is None else
                                    (rec["repaired_by"] or "Instandhaltung"),
                                    "user": None, "note": ""})
            bulk_insert(LeakStatusChange, history)
            # Each status occurs at most once in a path: (leak, to_status) names the row.
            hist_ids = {(leak, to): hid for hid, leak, to in LeakStatusChange.select(
                LeakStatusChange.id, LeakStatusChange.leak, LeakStatusChange.to_status)
                .where(LeakStatusChange.organization == organization.id,
                       LeakStatusChange.leak.in_(list(ids.values()))).tuples()}
            for h in history:
                batch.append({"action": "create", "entity_type": "leak_status_change",
                              "entity_id": hist_ids[(h["leak"], h["to_status"])],
                              "changes": {k: [None, _j(v)] for k, v in h.items()
                                          if v not in (None, "")}})
            writer.append(actor, "create", batch=batch)
            audit_count += len(batch)
            changes_total += len(history)
            done += size
            if progress:
                progress(size)
    return SeedResult(organization=organization.slug, sites=sites, locations=n_locations,
                      surveys=n_surveys, leaks=leaks, status_changes=changes_total,
                      audit_entries=audit_count, seconds=time.perf_counter() - started)


def _create_changes(rec: dict, leak_id: int) -> dict:
    out = {"id": [None, leak_id]}
    for k, v in rec.items():
        if k in ("version", "updated_at") or v in (None, ""):
            continue
        out[k] = [None, _j(v)]
    return out


def _j(value):
    """JSON-friendly value for an audit entry (as the writer's snapshots store them)."""
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value
