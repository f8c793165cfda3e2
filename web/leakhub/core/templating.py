"""Every Jinja filter of the app, registered once by create_app (`register_filters(app)`):
numbers, money and dates in the request's locale and the signed-in organization's time zone,
values for form inputs. Views that fill a form in Python use `input_dt`/`input_num` too."""
from __future__ import annotations

import datetime as dt
import hashlib
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from babel.dates import format_date, format_datetime, format_time
from flask import Flask, g, has_request_context, request
from flask_babel import format_currency, format_decimal, get_locale
from flask_login import current_user

from .validation import utc_to_local, zone


def org_tz() -> str | None:
    """The signed-in organization's time zone (looked up once per request: a list page asks
    for every row)."""
    if has_request_context() and "_org_tz" in g:
        return g._org_tz
    org = getattr(current_user, "organization", None)
    tz = getattr(org, "timezone", None)
    if has_request_context():
        g._org_tz = tz
    return tz


_SAMPLE = dt.datetime(2033, 11, 22, 13, 45)


def _german_patterns() -> tuple[str, str] | None:
    """strftime patterns equal to Babel's medium date and short time in the request's locale
    (de: "%d.%m.%Y", "%H:%M"), found once per request from a sample and checked on a second
    one; None when the locale's layout is not plain digits (Babel then formats each value)."""
    sym = _symbols()
    if "dt_patterns" not in sym:
        locale = sym["locale"]
        day = format_date(_SAMPLE, "medium", locale=locale)
        clock = format_time(_SAMPLE, "short", locale=locale)
        date_pat = day.replace("2033", "%Y").replace("11", "%m").replace("22", "%d")
        time_pat = clock.replace("13", "%H").replace("45", "%M")
        check = dt.datetime(2001, 2, 3, 4, 5)
        ok = ("%" in date_pat and "%" in time_pat
              and check.strftime(date_pat) == format_date(check, "medium", locale=locale)
              and check.strftime(time_pat) == format_time(check, "short", locale=locale))
        sym["dt_patterns"] = (date_pat, time_pat) if ok else None
    return sym["dt_patterns"]


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


def _german() -> bool:
    return str(_symbols()["locale"] or "en").startswith("de")


def _localdt(value, fmt: str = "%Y-%m-%d %H:%M"):
    """A naive-UTC time in the organization's zone: German 03.12.2026 14:05 (Babel's medium
    date and short time), English 2026-12-03 14:05. A `fmt` without %H shows the date only."""
    if value is None:
        return ""
    with_time = "%H" in fmt
    if isinstance(value, dt.datetime):
        local = utc_to_local(value, org_tz())
    else:
        local, with_time = value, False
    if _german():
        patterns = _german_patterns()
        if patterns is not None:
            return local.strftime(f"{patterns[0]} {patterns[1]}" if with_time else patterns[0])
        locale = _symbols()["locale"]
        text = format_date(local, "medium", locale=locale)
        return f"{text} {format_time(local, 'short', locale=locale)}" if with_time else text
    return local.strftime(fmt if with_time else fmt.split(" ")[0])


def _date(value):
    """A calendar date for reading: German 03.12.2026, English 2026-12-03."""
    if value is None or value == "":
        return ""
    if isinstance(value, dt.datetime):
        value = value.date()
    if _german():
        patterns = _german_patterns()
        if patterns is not None:
            return value.strftime(patterns[0])
        return format_date(value, "medium", locale=_symbols()["locale"])
    return value.strftime("%Y-%m-%d")


def _isodate(value):
    """A date as YYYY-MM-DD: the value of an <input type=date>."""
    if value is None or value == "":
        return ""
    return value.strftime("%Y-%m-%d")


def input_dt(value):
    """UTC datetime → value for <input type=datetime-local> in the organization's zone."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return utc_to_local(value, org_tz()).strftime("%Y-%m-%dT%H:%M")


def input_num(value):
    """A stored number as the value of a text input, in the locale's decimal separator and
    without thousands separators (1234,5 / 1234.5), so that core.validation reads it back
    as the same number ("1.234" would be a thousand and more in German)."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        text = (format(value.normalize(), "f") if value == value.to_integral()
                else format(value, "f"))
        text = text.rstrip("0").rstrip(".") if "." in text else text
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
    else:
        return str(value)
    return text.replace(".", _symbols()["decimal"]) if has_request_context() else text


def org_time(value, fmt: str = "medium"):
    """A naive-UTC timestamp shown in the signed-in organization's time zone and locale."""
    if not value:
        return ""
    org = current_user.organization if current_user.is_authenticated else None
    tz = zone(org.timezone) if org is not None else dt.UTC
    return format_datetime(value.replace(tzinfo=dt.UTC), fmt, tzinfo=tz,
                           locale=str(get_locale() or "en"))


FILTERS = {"num": _num, "num_fixed": _num_fixed, "money": _money, "localdt": _localdt,
           "isodate": _isodate, "date": _date, "input_dt": input_dt, "input_num": input_num,
           "org_time": org_time}


def register_filters(app: Flask) -> None:
    """Install every filter on the app's Jinja environment (create_app calls it once)."""
    app.jinja_env.filters.update(FILTERS)
    app.jinja_env.globals["get_locale"] = get_locale  # <html lang> in base.html
    register_static_versions(app)


STATIC_MAX_AGE = 365 * 24 * 3600


def register_static_versions(app: Flask) -> None:
    """Static URLs carry their file's content hash (`/static/css/leakhub.css?v=1a2b3c4d5e6f`,
    added by url_for), so browsers and Caddy may keep them for a year: a new release changes
    the hash, hence the URL (issue 19). The hash of a file is computed once per process; the
    files are part of the release and the same on every replica."""
    hashes: dict[str, str] = {}
    folder = Path(app.static_folder)

    @app.url_defaults
    def _static_version(endpoint, values):
        if endpoint != "static" or "v" in values or "filename" not in values:
            return
        name = values["filename"]
        if name not in hashes:
            path = (folder / name).resolve()
            try:
                path.relative_to(folder.resolve())
                hashes[name] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            except (OSError, ValueError):
                hashes[name] = ""
        if hashes[name]:
            values["v"] = hashes[name]

    @app.after_request
    def _static_cache(response):
        if request.endpoint == "static" and request.args.get("v") and \
                response.status_code in (200, 304):
            response.headers["Cache-Control"] = f"public, max-age={STATIC_MAX_AGE}, immutable"
        return response
