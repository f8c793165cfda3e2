"""Records → JSON for `/api/v1`: explicit serializers only (no model is dumped wholesale).

Decimals become JSON numbers (derived figures rounded, stored values exact), stored times
ISO 8601 in UTC with `Z`, days YYYY-MM-DD. The shapes are the response schemas in
api/schemas.py.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from flask import url_for

from .. import authz
from ..core.times import utc_iso
from ..leaks import calc
from ..leaks import service as leaks
from ..leaks.models import FIXED_STATUSES, Leak
from ..locations.models import Location
from ..surveys.models import Survey, SurveyScope


def _num(value, places: int | None = None):
    """Decimal → JSON number (rounded for derived figures; stored values are exact)."""
    if value is None:
        return None
    if places is not None:
        value = Decimal(value).quantize(Decimal(1).scaleb(-places))
    value = Decimal(value)
    return int(value) if value == value.to_integral_value() and abs(value) < 2**53 \
        else float(value)


def _ts(value: dt.datetime | None) -> str | None:
    """Stored naive UTC → ISO 8601 with Z."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return utc_iso(value, "seconds")


def _day(value) -> str | None:
    return value.isoformat() if value is not None else None


def location_json(loc: Location) -> dict:
    return {"id": loc.id, "kind": loc.kind, "code": loc.code, "name": loc.name,
            "parent": loc.parent_id, "depth": loc.depth, "notes": loc.notes,
            "version": loc.version, "created_at": _ts(loc.created_at),
            "updated_at": _ts(loc.updated_at)}


def scopes_of(actor, survey_ids) -> dict[int, list[int]]:
    """Survey id → the scope's location ids the actor may see."""
    out: dict[int, list[int]] = {i: [] for i in survey_ids}
    if survey_ids:
        rows = (authz.scope(actor, SurveyScope, "view")
                .where(SurveyScope.survey.in_(list(survey_ids))).order_by(SurveyScope.location))
        for row in rows:
            out.setdefault(row.survey_id, []).append(row.location_id)
    return out


def survey_json(survey: Survey, scope: list[int]) -> dict:
    return {"id": survey.id, "name": survey.name, "period_start": _day(survey.period_start),
            "period_end": _day(survey.period_end), "auditor_user": survey.auditor_user_id,
            "auditor_company": survey.auditor_company, "device": survey.device,
            "status": survey.status, "coverage_percent": survey.coverage_percent,
            "notes": survey.notes, "scope": sorted(scope), "version": survey.version,
            "created_at": _ts(survey.created_at), "updated_at": _ts(survey.updated_at)}


def survey_out(actor, survey: Survey) -> dict:
    return survey_json(survey, scopes_of(actor, [survey.id])[survey.id])


def figures_json(f) -> dict:
    return {"flow_m3_min": _num(f.flow_m3_min, 6), "power_kw": _num(f.power_kw, 4),
            "kwh_year": _num(f.kwh_year, 1), "cost_year": _num(f.cost_year, 2),
            "co2_kg_year": _num(f.co2_kg_year, 1), "currency": f.currency or "",
            "control_factor": _num(f.control_factor),
            "expected_kwh_year": _num(f.expected_kwh_year, 1),
            "expected_cost_year": _num(f.expected_cost_year, 2),
            "expected_co2_kg_year": _num(f.expected_co2_kg_year, 1)}


def leak_json(leak: Leak, figures) -> dict:
    return {
        "id": leak.id, "tag": leak.tag, "location": leak.location_id, "survey": leak.survey_id,
        "found_at": _ts(leak.found_at), "found_by_user": leak.found_by_user_id,
        "found_by": leak.found_by, "device_serial": leak.device_serial, "method": leak.method,
        "estimate_class": leak.estimate_class,
        "rate_inputs": {k: str(v) for k, v in leaks.rate_inputs_of(leak).items()},
        "rate_lpm": _num(leak.rate_lpm),
        "rate_low_lpm": _num(leak.rate_low_lpm), "rate_high_lpm": _num(leak.rate_high_lpm),
        "pressure_bar": _num(leak.pressure_bar), "gas": leak.gas, "component": leak.component,
        "priority": leak.priority, "description": leak.description,
        "recommended_action": leak.recommended_action, "spare_part": leak.spare_part,
        "status": leak.status, "due_date": _day(leak.due_date),
        "repaired_at": _day(leak.repaired_at), "repaired_by": leak.repaired_by,
        "repair_cost": _num(leak.repair_cost), "verified_at": _day(leak.verified_at),
        "verification_note": leak.verification_note, "previous_leak": leak.previous_leak_id,
        "assignee": leak.assignee_id, "order_number": leak.order_number,
        "after_lpm": _num(leak.after_lpm),
        "saved_lpm": (_num(calc.saved_lpm(leak.rate_lpm, leak.after_lpm))
                      if leak.status in FIXED_STATUSES else None),
        "source": leak.source, "client_id": leak.client_id, "version": leak.version,
        "created_at": _ts(leak.created_at),
        "updated_at": _ts(leak.updated_at), "figures": figures_json(figures),
    }


def leak_out(actor, leak: Leak) -> dict:
    return leak_json(leak, leaks.figures_for(actor, leak))


def photo_json(p) -> dict:
    return {"id": p.id, "leak": p.leak_id, "content_type": p.content_type, "size": p.size,
            "width": p.width, "height": p.height, "filename": p.original_filename,
            "uploaded_at": _ts(p.uploaded_at),
            "url": url_for("api.get_photo", photo_id=p.id)}


def dashboard_figures(f) -> dict:
    return {"count": f.count, "rate_lpm": _num(f.rate_lpm, 3), "kwh_year": _num(f.kwh_year, 1),
            "cost_year": _num(f.cost_year, 2), "co2_kg_year": _num(f.co2_kg_year, 1),
            "expected_kwh_year": _num(f.expected_kwh_year, 1),
            "expected_cost_year": _num(f.expected_cost_year, 2),
            "expected_co2_kg_year": _num(f.expected_co2_kg_year, 1)}


def dashboard_json(d) -> dict:
    return {
        "total": d.total, "to_review": d.to_review, "currency": d.currency,
        "open": dashboard_figures(d.open), "fixed": dashboard_figures(d.fixed),
        "by_site": [{"site": s.site_id, "label": s.label, "open": dashboard_figures(s.open),
                     "fixed": dashboard_figures(s.fixed)} for s in d.by_site],
        "by_component": [{"component": c, "open": dashboard_figures(f)}
                         for c, f in d.by_component],
        "trend": [{"month": m, "found": found, "repaired": rep} for m, found, rep in d.trend],
    }
