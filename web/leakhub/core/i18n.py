"""Which language a request speaks, and which number convention an input follows (issue 14).

- The interface language: the user's own choice, else the organization's, else the browser's
  (Accept-Language), else English (`select_locale`, called by app.py's locale selector).
- Outside a request (worker jobs, leakctl) `speaking(locale)` makes gettext speak a given
  language, e.g. a recipient's (the security digest).
- Numbers typed or imported as text are read in one number locale (`number_locale`): the
  request's language for forms; the file's convention for an import (`numbers_in`); English for
  string values in the JSON API (which takes JSON numbers; `use_english_numbers`). The one
  parser is core.validation.parse_decimal; its rules are in its docstring and docs/glossary.md.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
from pathlib import Path

from babel.support import Translations
from flask import Flask, g, has_app_context, has_request_context
from flask_babel import Babel, force_locale, get_locale

SUPPORTED = ("en", "de")
TRANSLATIONS = Path(__file__).resolve().parents[1] / "translations"
_numbers: contextvars.ContextVar[str | None] = contextvars.ContextVar("leakhub_numbers",
                                                                      default=None)


def _supported(code) -> str | None:
    code = (str(code or "").split("_")[0].split("-")[0]).lower()
    return code if code in SUPPORTED else None


def select_locale(user_language, org_language, accept_languages=None) -> str:
    """The user's language, else the organization's, else the browser's best match, else
    English. `accept_languages`: werkzeug's request.accept_languages (or None)."""
    for choice in (user_language, org_language):
        if _supported(choice):
            return _supported(choice)
    # The browser's languages by quality, each by its primary subtag (de-AT → de).
    for value, _quality in sorted(accept_languages or (), key=lambda vq: -vq[1]):
        if _supported(value):
            return _supported(value)
    return "en"


@functools.cache
def catalog(locale: str) -> Translations:
    """Leakhub's compiled catalog for `locale`, whatever the current request speaks (e.g. the
    importer knows the German export headers for an English user too)."""
    return Translations.load(str(TRANSLATIONS), [locale])


def recipient_locale(user) -> str:
    """The language to write to `user` in (e-mail): theirs, else their organization's."""
    return select_locale(getattr(user, "language", None),
                         getattr(getattr(user, "organization", None), "language", None))


@contextlib.contextmanager
def speaking(locale: str):
    """gettext (flask_babel's `_`, lazy labels) in `locale` inside the block — in a request,
    or without any Flask app (a worker job, leakctl): then a bare app with Leakhub's
    catalogs is pushed for the block."""
    locale = _supported(locale) or "en"
    if has_app_context():
        with force_locale(locale):
            yield
        return
    app = Flask("leakhub", root_path=str(TRANSLATIONS.parent))
    Babel(app)
    with app.test_request_context(), force_locale(locale):
        yield


def number_locale() -> str:
    """"de" or "en": how text numbers are read right now."""
    override = _numbers.get()
    if override:
        return override
    if has_request_context():
        pinned = g.get("number_locale")
        if pinned:
            return pinned
        return _supported(get_locale()) or "en"
    return "en"


@contextlib.contextmanager
def numbers_in(locale: str):
    """Read text numbers in `locale` inside the block (an import file's convention)."""
    token = _numbers.set(_supported(locale) or "en")
    try:
        yield
    finally:
        _numbers.reset(token)


def use_english_numbers() -> None:
    """For this request: string numbers follow English (the JSON API)."""
    g.number_locale = "en"
