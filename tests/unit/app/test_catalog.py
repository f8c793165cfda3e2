"""The German catalog is complete and current (issue 14).

A fresh extraction of web/leakhub (Python and templates, as configured in babel.cfg) is compared
with web/leakhub/translations/de/LC_MESSAGES/messages.po: every message has a German translation
(both plural forms), none is fuzzy, none is obsolete, placeholders and HTML tags match, the
committed messages.pot and messages.mo are what the .po gives. When a test here fails, run the
three commands at the top of babel.cfg (extract, update, compile) and translate the new entries
following docs/glossary.md.

The last test renders a few pages for an organization whose language is German and checks that
they read German.
"""
from __future__ import annotations

import datetime as dt
import html
import io
import re
from decimal import Decimal as D
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from leakhub.leaks import service as leaks

from support.reporting_data import make_tree, new_leak

REPO = Path(__file__).resolve().parents[3]
PACKAGE = "web/leakhub"
TRANSLATIONS = REPO / PACKAGE / "translations"
PO = TRANSLATIONS / "de" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
POT = TRANSLATIONS / "messages.pot"
# pybabel extract -k _l -k lazy_gettext (babel.cfg): the lazy variants used for module-level
# label tables come on top of Babel's defaults (_, gettext, ngettext, ...).
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}

# printf-style conversions as Python's % operator and Babel's python-format check read them
PLACEHOLDER = re.compile(r"%(?:\((?P<name>[^)]*)\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?"
                         r"(?P<conv>[diouxXeEfFgGcrsa%])")
TAG = re.compile(r"</?([a-zA-Z][a-zA-Z0-9]*)\b[^>]*>")
# "Sie" form throughout: informal address must not slip in.
INFORMAL = re.compile(r"\b(du|dich|dir|dein|deine|deinen|deinem|deiner|euch|euer|eure)\b",
                      re.IGNORECASE)
# English words that must never be left standing in German text (the glossary's terms instead)
ENGLISH = re.compile(r"\b(leak|leaks|survey|surveys|site|sites|building|repaired|verified|"
                     r"please|the|and|of|with)\b")


def _fresh_extraction() -> Catalog:
    with open(REPO / "babel.cfg", encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f, "babel.cfg")
    inside = PACKAGE.split("/")

    def only_the_package(dirname: str) -> bool:
        # walk web/ and web/leakhub/... only, never .venv, var/ or tests/
        parts = Path(dirname).relative_to(REPO).parts
        return parts[:len(inside)] == tuple(inside[:len(parts)])

    catalog = Catalog(project="Leakhub")
    for filename, lineno, message, comments, context in extract_from_dir(
            REPO, method_map, options_map, keywords=KEYWORDS,
            directory_filter=only_the_package):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments,
                    context=context)
    return catalog


@pytest.fixture(scope="module")
def extracted() -> Catalog:
    return _fresh_extraction()


@pytest.fixture(scope="module")
def german() -> Catalog:
    with open(PO, "rb") as f:
        return read_po(f, locale="de")


def _key(message):
    return (message.id[0] if isinstance(message.id, (list, tuple)) else message.id,
            message.context)


def _entries(catalog):
    return {_key(m): m for m in catalog if m.id}


def _show(keys, n=15):
    keys = sorted(keys, key=str)
    more = f"\n  ... and {len(keys) - n} more" if len(keys) > n else ""
    return "\n".join(f"  {k[0]!r}" for k in keys[:n]) + more


def test_extraction_finds_the_strings(extracted):
    """Sanity: the configuration reaches Python code, templates and the plural/lazy forms."""
    ids = _entries(extracted)
    assert len(ids) > 500
    assert ("Leaks", None) in ids  # templates
    assert ("Choose a status.", None) in ids  # Python, gettext as _
    assert ("FRL unit", None) in ids  # Python, lazy_gettext as _l
    assert isinstance(ids[("%(num)d leak", None)].id, tuple)  # ngettext in a template


def test_every_message_has_a_german_translation(extracted, german):
    fresh, de = _entries(extracted), _entries(german)
    missing = fresh.keys() - de.keys()
    assert not missing, ("messages without a German entry (run the commands in babel.cfg, "
                         f"then translate):\n{_show(missing)}")
    empty = [k for k, m in de.items()
             if not (all(m.string) if isinstance(m.string, (list, tuple)) else m.string)]
    assert not empty, f"German entries with an empty translation:\n{_show(empty)}"


def test_no_fuzzy_and_no_obsolete_entries(extracted, german):
    fuzzy = [_key(m) for m in german if m.id and m.fuzzy]
    assert not fuzzy, f"fuzzy German entries (review, then drop the flag):\n{_show(fuzzy)}"
    assert not german.fuzzy, "the German catalog's header is marked fuzzy"
    assert not german.obsolete, ("obsolete (#~) entries in the German catalog:\n"
                                 f"{_show([_key(m) for m in german.obsolete.values()])}")
    stale = _entries(german).keys() - _entries(extracted).keys()
    assert not stale, ("German entries for messages the code no longer has (run pybabel "
                       f"update with --ignore-obsolete):\n{_show(stale)}")


def test_plural_entries_have_both_german_forms(german):
    assert german.num_plurals == 2
    for m in german:
        if m.id and isinstance(m.id, (list, tuple)):
            assert isinstance(m.string, (list, tuple)) and len(m.string) == 2, m.id
            assert all(m.string), m.id


def _placeholders(text: str) -> list[str]:
    return sorted(m.group(0) if m.group("name") is None else f"%({m.group('name')})"
                  f"{m.group('conv')}" for m in PLACEHOLDER.finditer(text))


def test_placeholders_and_html_are_kept(german):
    bad = []
    for m in german:
        if not m.id:
            continue
        ids = list(m.id) if isinstance(m.id, (list, tuple)) else [m.id]
        strings = list(m.string) if isinstance(m.string, (list, tuple)) else [m.string]
        for i, text in enumerate(strings):
            source = ids[min(i, len(ids) - 1)]
            if _placeholders(source) != _placeholders(text):
                bad.append(f"{source!r}: placeholders {_placeholders(source)} != "
                           f"{_placeholders(text)} in {text!r}")
            if sorted(TAG.findall(source)) != sorted(TAG.findall(text)):
                bad.append(f"{source!r}: HTML tags differ in {text!r}")
    # Babel's own checks (python-format, number of plural forms), as pybabel compile runs them
    bad += [f"{m.id!r}: {e}" for m, errors in german.check() for e in errors]
    assert not bad, "\n".join(bad[:20])


def test_german_uses_the_formal_address_and_no_english_leftovers(german):
    informal, english = [], []
    for m in german:
        if not m.id:
            continue
        for text in (m.string if isinstance(m.string, (list, tuple)) else [m.string]):
            plain = PLACEHOLDER.sub(" ", text)
            if INFORMAL.search(plain):
                informal.append(text)
            if ENGLISH.search(plain):
                english.append(text)
    assert not informal, "use the 'Sie' form:\n" + "\n".join(informal[:10])
    assert not english, "English words in German text:\n" + "\n".join(english[:10])


def test_compiled_catalog_and_template_are_current(extracted, german):
    buf = io.BytesIO()
    write_mo(buf, german)
    assert MO.exists() and MO.read_bytes() == buf.getvalue(), (
        f"{MO.relative_to(REPO)} is not what {PO.relative_to(REPO)} compiles to: run "
        "`.venv/bin/pybabel compile -d web/leakhub/translations` and commit the .mo")
    with open(POT, "rb") as f:
        template = read_po(f)
    assert _entries(template).keys() == _entries(extracted).keys(), (
        f"{POT.relative_to(REPO)} is stale: run the extract command in babel.cfg")


def test_the_app_finds_the_catalog(app):
    """Flask-Babel looks in `translations` next to the app package unless told otherwise."""
    assert "BABEL_TRANSLATION_DIRECTORIES" not in app.config or \
        app.config["BABEL_TRANSLATION_DIRECTORIES"] == "translations"
    assert Path(app.root_path, "translations") == TRANSLATIONS


# ---------------------------------------------------------------- pages in German

PAGES = {
    "/": (["Übersicht", "Leckagen", "Begehungen", "Orte", "Abmelden", "Angemeldet als"],
          ["Dashboard", "Leaks", "Surveys", "Sign out", "Signed in as"]),
    "/dashboard": (["Offene Leckagen", "Kosten pro Jahr", "Nach Standort", "Bauteil",
                    "Wartungseinheit", "Schlauch", "Erzielte Einsparungen"],
                   ["Open leaks", "Cost per year", "By site", "Component", "FRL unit", "hose"]),
    "/leaks": (["Leckage-Nr.", "Priorität", "offen", "verifiziert", "Filtern",
                "Leckage erfassen", "3 Leckagen", "Schnellkupplung"],
               ["Priority", "open", "verified", "Filter", "Record a leak", "3 leaks",
                "quick disconnect"]),
    "/locations": (["Neuer Standort", "Standort", "Gebäude", "Bereich", "1 Leckage"],
                   ["New site", "site", "building", "area", "1 leak"]),
    "/no-such-page": (["404 · Nicht gefunden", "Zurück zur Startseite"],
                      ["Not found", "Back to the start page"]),
}
STATUS = {"/no-such-page": 404}


def _visible_text(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    text = re.sub(r"<[^>]+>", "\n", page)
    return html.unescape(re.sub(r"[ \t]+", " ", text))


def _words(text: str, phrase: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text) is not None


@pytest.fixture
def german_org_pages(org, actor, login, client):
    tree = make_tree(actor)
    new_leak(actor, tree["area"], component="frl_unit", rate_lpm=D("12.5"))
    new_leak(actor, tree["hall"], component="hose", found_at=dt.datetime(2024, 5, 2, 8))
    done = new_leak(actor, tree["site2"], component="quick_disconnect")
    leaks.change_status(actor, done, "repaired", repaired_at=dt.date(2024, 5, 3))
    leaks.change_status(actor, done, "verified")

    def render(language: str) -> dict[str, str]:
        org.language = language
        org.save()
        c = login(actor.user)
        pages = {}
        for path in PAGES:
            resp = c.get(path)
            assert resp.status_code == STATUS.get(path, 200), (path, resp.status_code)
            pages[path] = _visible_text(resp.get_data(as_text=True))
        return pages
    return render


def test_pages_read_german_for_a_german_organization(german_org_pages, german):
    pages = german_org_pages("de")
    for path, (german_words, english_words) in PAGES.items():
        text = pages[path]
        for word in german_words:
            assert _words(text, word), f"{path}: German {word!r} missing"
        for word in english_words:
            assert not _words(text, word), f"{path}: English {word!r} on a German page"
    # No English catalog text of two words or more shows on these pages.
    for m in german:
        if not m.id or isinstance(m.id, (list, tuple)) or "%" in m.id or m.string == m.id:
            continue
        if " " in m.id.strip():
            for path, text in pages.items():
                assert m.id not in text, f"{path}: English catalog text {m.id!r}"


def test_the_same_pages_stay_english_for_an_english_organization(german_org_pages):
    pages = german_org_pages("en")
    for path, (_german_words, english_words) in PAGES.items():
        for word in english_words:
            assert _words(pages[path], word), f"{path}: English {word!r} missing"
