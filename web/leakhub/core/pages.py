"""Small helpers shared by the HTML views of the feature folders: the "member" guard,
form re-rendering on validation errors, the conflict page, display filters, QR codes."""
from __future__ import annotations

import datetime as dt
import functools
from decimal import ROUND_HALF_UP, Decimal

from flask import g, render_template
from flask_babel import format_currency, format_decimal, get_locale
from flask_login import current_user, login_required
from markupsafe import Markup, escape

from .validation import utc_to_local


def member_required(view):
    """Signed in and given a role; users waiting for access see the waiting page."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current_user.is_pending:
            return render_template("identity/waiting.html"), 403
        return view(*args, **kwargs)
    return login_required(wrapper)


def org_tz() -> str | None:
    org = getattr(current_user, "organization", None)
    return getattr(org, "timezone", None)


def _symbols() -> dict:
    """The locale's decimal and group separators and currency layouts, looked up once per
    request: babel's formatter costs ~0.2 ms a call, too much for a 50-row table."""
    cached = g.get("_num_symbols")
    if cached is None:
        locale = get_locale()
        sample = format_decimal(Decimal("1234.5"), "#,##0.0")  # e.g. 1,234.5 / 1.234,5
        cached = g._num_symbols = {"group": sample[1] if len(sample) == 7 else ",",
                                   "decimal": sample[-2], "locale": locale, "currency": {}}
    return cached


def _plain(value, digits: int, fixed: bool) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, Decimal):
        value = Decimal(str(value))
    value = value.quantize(Decimal(1).scaleb(-max(digits, 0)), rounding=ROUND_HALF_UP)
    text = f"{value:,.{max(digits, 0)}f}"
    if not fixed and digits > 0 and "." in text:
        text = text.rstrip("0").rstrip(".")
    sym = _symbols()
    return text.replace(",", "\x00").replace(".", sym["decimal"]).replace("\x00", sym["group"])


def _num(value, digits: int = 2):
    """Up to `digits` decimals, locale separators (1,234.5 / 1.234,5)."""
    return _plain(value, digits, fixed=False)


def _num_fixed(value, digits: int = 2):
    return _plain(value, digits, fixed=True)


def _money(value, currency: str = "EUR", digits: int | None = None):
    """Amount with currency in the locale's layout (€1,234.50 / 1.234,50 €)."""
    if value is None or value == "":
        return ""
    if not currency:
        return _num_fixed(value, 2)
    layouts = _symbols()["currency"]
    if currency not in layouts:
        sample = format_currency(Decimal("7"), currency)  # e.g. "€7.00", "7,00 €", "CHF 7.00"
        i = sample.index("7")
        end = i + 1
        while end < len(sample) and (sample[end].isdigit() or sample[end] in ".,\u00a0'"
                                     and end + 1 < len(sample) and sample[end + 1].isdigit()):
            end += 1
        layouts[currency] = (sample[:i], sample[end:])
    prefix, suffix = layouts[currency]
    return f"{prefix}{_plain(value, 2 if digits is None else digits, fixed=True)}{suffix}"


def _localdt(value, fmt: str = "%Y-%m-%d %H:%M"):
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return utc_to_local(value, org_tz()).strftime(fmt)
    return value.strftime(fmt.split(" ")[0])


def _date(value):
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d")


def _input_dt(value):
    """UTC datetime → value for <input type=datetime-local> in the organization's zone."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return utc_to_local(value, org_tz()).strftime("%Y-%m-%dT%H:%M")


def _input_num(value):
    if value is None:
        return ""
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


def install(bp) -> None:
    """Register the display filters app-wide (idempotent; every feature blueprint calls it)."""
    def register(state):
        env = state.app.jinja_env
        if "num" in env.filters:
            return
        env.filters.update(num=_num, num_fixed=_num_fixed, money=_money, localdt=_localdt,
                           isodate=_date, input_dt=_input_dt, input_num=_input_num)
    bp.record_once(register)


def qr_svg(data: str, *, css_class: str = "qr", label: str = "") -> Markup:
    """The QR code of `data` as inline SVG (no style attributes: CSP style-src 'self')."""
    import qrcode

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2)
    qr.add_data(data)
    qr.make(fit=True)
    matrix = qr.get_matrix()
    n = len(matrix)
    parts = []
    for y, row in enumerate(matrix):
        x = 0
        while x < n:
            if row[x]:
                start = x
                while x < n and row[x]:
                    x += 1
                parts.append(f"M{start},{y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {n} {n}" class="{escape(css_class)}"'
        f' role="img" aria-label="{escape(label or data)}" shape-rendering="crispEdges">'
        f'<rect width="{n}" height="{n}" fill="#fff"/>'
        f'<path d="{"".join(parts)}" fill="#000"/></svg>')


def conflict_rows(fields: list[tuple[str, str]], mine: dict, current, fmt=None) -> list[dict]:
    """Rows for the conflict page: (label, what I sent, what is saved now) per field,
    flagged where they differ."""
    fmt = fmt or (lambda name, value: "" if value is None else str(value))
    rows = []
    for name, label in fields:
        if isinstance(current, dict):
            theirs = current.get(name)
        else:
            theirs = getattr(current, name, None) if current is not None else None
        a, b = fmt(name, mine.get(name)), fmt(name, theirs)
        rows.append({"name": name, "label": label, "mine": a, "theirs": b, "differs": a != b})
    return rows
