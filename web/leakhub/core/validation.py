"""Input validation for every boundary (forms, JSON, imports, CLI): small field parsers that
name the field in their error (DESIGN §3.10).

    f = Fields(request.form)
    name = f.text("name", required=True, max_length=200)
    rate = f.decimal("rate_lpm", required=True, min_value=0)
    f.check()            # raises ValidationError({field: message, ...}) if anything failed

Numbers are read in the request's number locale (core.i18n): "1.234,5" and "6.000" (six
thousand) in German, "1,234.5" and "6,000" in English; see parse_decimal. Dates accept ISO
(2024-03-31) and German (31.03.2024). Services raise the same
ValidationError for rules that need the database (duplicate tag, illegal status change).
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_babel import gettext as _

from .errors import Invalid
from .i18n import number_locale


class ValidationError(Invalid):
    """`errors` maps a field name (or "" for the whole form) to a readable message: the
    field parsers' and services' name for core.errors.Invalid (422)."""

    def __init__(self, errors: dict[str, str] | str, field: str | None = None):
        super().__init__(errors, field)


_MISSING = object()
_NUMBER = re.compile(r"^[+-]?[0-9][0-9.,' ]*$|^[+-]?[.,][0-9]+$")


def _blank(raw) -> bool:
    return raw is None or (isinstance(raw, str) and raw.strip() == "")


def _not_a_number(field: str, locale: str) -> ValidationError:
    example = "1.234,5" if locale == "de" else "1,234.5"
    return ValidationError(_("Enter a number, e.g. %(example)s.", example=example), field)


def parse_decimal(raw, field: str = "", locale: str | None = None) -> Decimal | None:
    """Text → Decimal in one number locale ("de" or "en"; None: core.i18n.number_locale(),
    the request's language, an import file's convention, English in the JSON API). The one
    number parser of forms, imports and the API:

    - the locale's decimal separator (de ",", en ".") once: the decimal point;
    - the locale's thousands separator (de ".", en ",") before groups of exactly three digits
      (first group 1-3 digits, not starting with 0): thousands. So "6.000" is six thousand in
      German and six in English; "6,000" is six in German and six thousand in English;
    - any other lone separator is the decimal point ("12.5" and "0.500" in German: 12,5 and
      0,5; "12,5" in English: 12.5), because a typed decimal point is the likelier intent;
    - both separators: as the locale writes them ("1.234,5" in German, "1,234.5" in
      English); the other order is refused, never guessed;
    - spaces, no-break spaces and apostrophes are thousands separators too ("1 234,5").
    JSON numbers (int, float, Decimal) are taken as they are; '' → None."""
    if _blank(raw):
        return None
    if isinstance(raw, (int, Decimal)):
        return Decimal(raw)
    if isinstance(raw, float):
        return Decimal(str(raw))
    loc = "de" if (locale or number_locale()) == "de" else "en"
    dec, grp = (",", ".") if loc == "de" else (".", ",")
    text = str(raw).strip()
    for space in ("\u00a0", "\u202f", " ", "'"):
        text = text.replace(space, "")
    if not _NUMBER.match(text):
        raise _not_a_number(field, loc)
    sign = ""
    if text[0] in "+-":
        sign, text = text[0], text[1:]
    grouped = re.compile(r"^[1-9][0-9]{0,2}(?:" + re.escape(grp) + r"[0-9]{3})+$")
    if dec in text and grp in text:
        whole, _sep, frac = text.rpartition(dec)
        if dec in whole or grp in frac or not (whole.isdigit() or grouped.match(whole)):
            raise _not_a_number(field, loc)
        text = whole.replace(grp, "") + "." + frac
    elif grp in text:
        if grouped.match(text):
            text = text.replace(grp, "")
        elif text.count(grp) == 1:
            text = text.replace(grp, ".")
        else:
            raise _not_a_number(field, loc)
    elif dec in text:
        if text.count(dec) > 1:
            raise _not_a_number(field, loc)
        text = text.replace(dec, ".")
    try:
        value = Decimal(sign + text)
    except InvalidOperation:
        raise _not_a_number(field, loc) from None
    if not value.is_finite():
        raise _not_a_number(field, loc)
    return value


def parse_int(raw, field: str = "", locale: str | None = None) -> int | None:
    """A whole number, read like parse_decimal ("6.000" in German is 6000)."""
    if _blank(raw):
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    text = str(raw).strip()
    if re.fullmatch(r"[+-]?\d{1,18}", text):
        return int(text)
    try:
        value = parse_decimal(text, field, locale)
    except ValidationError:
        raise ValidationError(_("Enter a whole number."), field) from None
    if value is None or value != value.to_integral_value() or abs(value) >= 10 ** 18:
        raise ValidationError(_("Enter a whole number."), field)
    return int(value)


def parse_date(raw, field: str = "") -> dt.date | None:
    if _blank(raw):
        return None
    if isinstance(raw, dt.datetime):
        return raw.date()
    if isinstance(raw, dt.date):
        return raw
    text = str(raw).strip()
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            value = dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        if not 1900 <= value.year <= 2200:
            break
        return value
    raise ValidationError(_("Enter a date as YYYY-MM-DD or DD.MM.YYYY."), field)


def parse_datetime(raw, field: str = "") -> dt.datetime | None:
    """A naive local date-time (the caller converts from the organization's time zone).
    A date alone means midnight."""
    if _blank(raw):
        return None
    if isinstance(raw, dt.datetime):
        return raw
    text = str(raw).strip()
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S",
                "%d.%m.%Y %H:%M", "%Y-%m-%d", "%d.%m.%Y"):
        try:
            value = dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
        if 1900 <= value.year <= 2200:
            return value
    raise ValidationError(_("Enter a date and time as YYYY-MM-DD HH:MM."), field)


def zone(tzname: str | None):
    try:
        return ZoneInfo(tzname or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def local_to_utc(value: dt.datetime | None, tzname: str | None) -> dt.datetime | None:
    """Naive local time in `tzname` → naive UTC (how the database stores times)."""
    if value is None:
        return None
    return value.replace(tzinfo=zone(tzname)).astimezone(dt.UTC).replace(tzinfo=None)


def utc_to_local(value: dt.datetime | None, tzname: str | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC).astimezone(zone(tzname)).replace(tzinfo=None)


class Fields:
    """Collects parsed values and per-field errors from a mapping (form, JSON, CSV row)."""

    def __init__(self, data):
        self.data = data if data is not None else {}
        self.errors: dict[str, str] = {}

    def raw(self, name):
        value = self.data.get(name)
        return value.strip() if isinstance(value, str) else value

    def _run(self, name, fn, required, default):
        raw = self.raw(name)
        if _blank(raw):
            if required:
                self.errors[name] = _("This field is required.")
            return default
        try:
            return fn(raw)
        except ValidationError as exc:
            self.errors[name] = next(iter(exc.errors.values()))
            return default

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)

    def text(self, name, *, required=False, max_length=200, default=""):
        def fn(raw):
            value = str(raw).strip()
            if len(value) > max_length:
                raise ValidationError(_("At most %(n)d characters.", n=max_length), name)
            if any(ord(c) < 0x20 and c not in "\r\n\t" for c in value):
                raise ValidationError(_("Contains control characters."), name)
            return value
        return self._run(name, fn, required, default)

    def decimal(self, name, *, required=False, min_value=None, max_value=None, default=None,
                places=None):
        def fn(raw):
            value = parse_decimal(raw, name)
            if min_value is not None and value < Decimal(str(min_value)):
                raise ValidationError(_("Must be at least %(v)s.", v=min_value), name)
            if max_value is not None and value > Decimal(str(max_value)):
                raise ValidationError(_("Must be at most %(v)s.", v=max_value), name)
            if places is not None and value != value.quantize(Decimal(1).scaleb(-places)):
                raise ValidationError(_("At most %(n)d decimal places.", n=places), name)
            return value
        return self._run(name, fn, required, default)

    def integer(self, name, *, required=False, min_value=None, max_value=None, default=None):
        def fn(raw):
            value = parse_int(raw, name)
            if min_value is not None and value < min_value:
                raise ValidationError(_("Must be at least %(v)s.", v=min_value), name)
            if max_value is not None and value > max_value:
                raise ValidationError(_("Must be at most %(v)s.", v=max_value), name)
            return value
        return self._run(name, fn, required, default)

    def date(self, name, *, required=False, default=None):
        return self._run(name, lambda raw: parse_date(raw, name), required, default)

    def datetime(self, name, *, required=False, default=None):
        return self._run(name, lambda raw: parse_datetime(raw, name), required, default)

    def choice(self, name, choices, *, required=False, default=None):
        allowed = {str(c): c for c in choices}

        def fn(raw):
            if str(raw) not in allowed:
                raise ValidationError(_("Choose one of the offered values."), name)
            return allowed[str(raw)]
        return self._run(name, fn, required, default)

    def boolean(self, name) -> bool:
        return str(self.raw(name) or "").lower() in ("1", "on", "true", "yes")

    def ids(self, name) -> list[int]:
        """A list of ids (multi-select, checkboxes)."""
        getlist = getattr(self.data, "getlist", None)
        values = getlist(name) if getlist else (self.data.get(name) or [])
        if isinstance(values, (str, int)):
            values = [values]
        out = []
        for v in values:
            try:
                out.append(int(v))
            except (TypeError, ValueError):
                self.errors[name] = _("Choose one of the offered values.")
        return list(dict.fromkeys(out))

    def check(self) -> None:
        if self.errors:
            raise ValidationError(self.errors)


EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def validate_email(f: Fields, name: str = "email") -> str:
    """The one e-mail rule (invitations, an organization's first administrator): required,
    at most 254 characters, name@domain.tld without spaces; returned lowercased."""
    email = (f.text(name, required=True, max_length=254) or "").lower()
    if email and not EMAIL_RE.match(email):
        f.error(name, _("Enter a valid e-mail address, e.g. anna.berg@example.com."))
    return email
