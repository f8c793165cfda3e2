"""Column mapping: which file column feeds which leak field, suggested from header names in
English and German ("Tag", "Nr.", "Leckage-Nr", "Standort", "Leckrate l/min", "Druck",
"Bauteil", "Datum", ...), and value vocabularies (component, status, priority labels in both
languages) → stored keys."""
from __future__ import annotations

import re
import unicodedata

from flask_babel import lazy_gettext as _l

from ..core.i18n import catalog

# Import target fields, in form order, with the label shown in the mapping step. The export
# writes the same labels as headers in the user's language; both languages' labels are known
# below (EXPORT_HEADERS, GERMAN_HEADERS), so an exported file re-imports without mapping.
FIELDS = {
    "tag": _l("Tag number"),
    "location": _l("Location path"),
    "site": _l("Site"),
    "building": _l("Building"),
    "area": _l("Area"),
    "survey": _l("Survey"),
    "found_at": _l("Found at"),
    "found_by": _l("Found by"),
    "device_serial": _l("Device serial"),
    "method": _l("Method"),
    "estimate_class": _l("Estimate class"),
    "rate_lpm": _l("Leak rate l/min"),
    "rate_low_lpm": _l("Rate low l/min"),
    "rate_high_lpm": _l("Rate high l/min"),
    "pressure_bar": _l("Pressure bar"),
    "gas": _l("Gas"),
    "component": _l("Component"),
    "priority": _l("Priority"),
    "description": _l("Description"),
    "recommended_action": _l("Recommended action"),
    "spare_part": _l("Spare part"),
    "status": _l("Status"),
    # Why a deferred leak waits (the status history's note); a row that defers needs it.
    "deferral_reason": _l("Deferral reason"),
    "due_date": _l("Due date"),
    "repaired_at": _l("Repair date"),
    "repaired_by": _l("Repaired by"),
    "repair_cost": _l("Repair cost"),
    "verification_note": _l("Verification note"),
    # Follow-up (issue 18 part 7): the assignee by e-mail address (the same rule as the form:
    # a user who may edit the leak), the maintenance order and the re-measured rate.
    "assignee": _l("Assignee e-mail"),
    "order_number": _l("Maintenance order number"),
    "after_lpm": _l("Rate after repair l/min"),
    # Inputs of a calculated rate (docs/leak-rates.md), as leaks.service.RATE_INPUTS.
    "orifice_diameter_mm": _l("Hole diameter mm"),
    "discharge_coefficient": _l("Discharge coefficient Cd"),
    "temperature_c": _l("Air temperature °C"),
    "detector_db": _l("Detector reading dB"),
    "detector_distance_m": _l("Distance of the reading m"),
}

# English label text (as exported) for each field; part of the synonyms below.
EXPORT_HEADERS = {
    "tag": "Tag number", "location": "Location path", "site": "Site", "building": "Building",
    "area": "Area", "survey": "Survey", "found_at": "Found at", "found_by": "Found by",
    "device_serial": "Device serial", "method": "Method", "estimate_class": "Estimate class",
    "rate_lpm": "Leak rate l/min", "rate_low_lpm": "Rate low l/min",
    "rate_high_lpm": "Rate high l/min", "pressure_bar": "Pressure bar", "gas": "Gas",
    "component": "Component", "priority": "Priority", "description": "Description",
    "recommended_action": "Recommended action", "spare_part": "Spare part", "status": "Status",
    "deferral_reason": "Deferral reason",
    "due_date": "Due date", "repaired_at": "Repair date", "repaired_by": "Repaired by",
    "repair_cost": "Repair cost", "verification_note": "Verification note",
    "assignee": "Assignee e-mail", "order_number": "Maintenance order number",
    "after_lpm": "Rate after repair l/min", "orifice_diameter_mm": "Hole diameter mm",
    "discharge_coefficient": "Discharge coefficient Cd", "temperature_c": "Air temperature °C",
    "detector_db": "Detector reading dB", "detector_distance_m": "Distance of the reading m",
}

# Columns of an export that the importer does not read (the location path and the leak's own
# fields carry the data): never suggested for a field, in either language.
EXPORT_ONLY_HEADERS = {
    "location_name": _l("Location name"), "site_code": _l("Site code"),
    "verified_at": _l("Verified at"), "kwh_year": _l("Energy kWh per year"),
    "cost_year": _l("Cost per year"), "currency": _l("Currency"),
    "co2_kg_year": _l("CO2 kg per year"),
}
EXPORT_ONLY_ENGLISH = ("Location name", "Site code", "Verified at", "Energy kWh per year",
                       "Cost per year", "Currency", "CO2 kg per year")


def _german(texts) -> list[str]:
    """The German catalog's translations of English labels (independent of the request's
    language: an English user imports a German export too)."""
    german = catalog("de")
    return [german.gettext(t) for t in texts]


# The German export headers ("Leckage-Nr.", "Ortspfad", "Gefunden am", ...) by field.
GERMAN_HEADERS = dict(zip(EXPORT_HEADERS, _german(EXPORT_HEADERS.values()), strict=True))

SYNONYMS = {
    "tag": ["tag", "tagnumber", "tagnr", "tagno", "tagid", "nr", "no", "number", "nummer",
            "leaknumber", "leakno", "leaknr", "leakid", "leckagenr", "leckagenummer",
            "leckagenno", "lecknr", "lecknummer", "leckage", "leckagen", "markierung",
            "anhaenger", "anhaengernr", "kennzeichnung", "kennung", "tagnummer"],
    # The location tree is site → building → area. German files name the levels "Standort"
    # or "Werk" (site), "Gebäude" or "Halle" (building), "Bereich" or "Messort" (area).
    "location": ["locationpath", "location", "standortpfad", "ort", "pfad", "path", "lage",
                 "einbauort", "position", "anlage", "maschine", "machine"],
    "site": ["site", "standort", "werk", "plant", "fabrik", "niederlassung"],
    "building": ["building", "gebaeude", "halle", "hall"],
    "area": ["area", "bereich", "messort", "zone", "raum", "abteilung", "department"],
    "survey": ["survey", "audit", "begehung", "messkampagne", "kampagne", "projekt", "project"],
    "found_at": ["foundat", "date", "datum", "founddate", "found", "gefundenam", "erfasstam",
                 "aufnahmedatum", "messdatum", "datumuhrzeit", "datetime", "zeitpunkt",
                 "erfassungsdatum", "timestamp", "zeit"],
    "found_by": ["foundby", "auditor", "pruefer", "erfasstvon", "gefundenvon", "techniker",
                 "inspector", "bearbeiter", "erfasser"],
    "device_serial": ["deviceserial", "device", "serialnumber", "seriennummer", "geraet",
                      "messgeraet", "geraeteseriennummer"],
    "method": ["method", "methode", "messmethode"],
    "estimate_class": ["estimateclass", "schaetzklasse", "groessenklasse"],
    "rate_lpm": ["leakratelmin", "leakrate", "rate", "ratelmin", "leckratelmin", "leckrate",
                 "leckagerate", "leckagelmin", "verlustlmin", "verlust", "durchfluss",
                 "durchflusslmin", "volumenstrom", "volumenstromlmin", "flow", "flowlmin",
                 "lmin", "leckmenge", "leckmengelmin"],
    "rate_low_lpm": ["ratelowlmin", "ratelow", "leckrateminlmin", "leckratemin", "leckratevon",
                     "minlmin", "untergrenze"],
    "rate_high_lpm": ["ratehighlmin", "ratehigh", "leckratemaxlmin", "leckratemax",
                      "leckratebis", "maxlmin", "obergrenze"],
    "pressure_bar": ["pressurebar", "pressure", "druckbar", "druck", "bar", "betriebsdruck",
                     "netzdruck"],
    "gas": ["gas", "medium"],
    "component": ["component", "bauteil", "komponente", "bauteiltyp", "bauteilart",
                  "leckageort", "art", "typ", "type"],
    "priority": ["priority", "prioritaet", "prio", "dringlichkeit"],
    "description": ["description", "beschreibung", "bemerkung", "bemerkungen", "kommentar",
                    "comment", "comments", "notes", "note", "anmerkung", "notiz", "text"],
    "recommended_action": ["recommendedaction", "action", "massnahme", "empfohlenemassnahme",
                           "abhilfe", "reparaturhinweis", "handlungsempfehlung"],
    "spare_part": ["sparepart", "ersatzteil", "part", "material"],
    "status": ["status", "zustand", "bearbeitungsstatus"],
    "deferral_reason": ["deferralreason", "reasonfordeferral", "deferredbecause",
                        "zurueckstellungsgrund", "grundderzurueckstellung", "begruendung"],
    "due_date": ["duedate", "due", "faellig", "faelligam", "termin", "faelligkeit"],
    "repaired_at": ["repairdate", "repairedat", "repaired", "repariertam", "reparaturdatum",
                    "behobenam"],
    "repaired_by": ["repairedby", "repariertvon", "behobenvon"],
    "repair_cost": ["repaircost", "reparaturkosten", "behebungskosten"],
    "verification_note": ["verificationnote", "pruefvermerk", "verifikation", "nachmessung"],
    "assignee": ["assigneeemail", "assignee", "zustaendig", "zustaendiger", "verantwortlich",
                 "zugewiesenan", "assignedto"],
    "order_number": ["maintenanceordernumber", "ordernumber", "maintenanceorder",
                     "auftragsnummer", "auftragsnr", "instandhaltungsauftrag", "workorder"],
    "after_lpm": ["rateafterrepairlmin", "rateafterrepair", "afterlpm",
                  "leckratenachreparatur", "nachmessunglmin"],
    "orifice_diameter_mm": ["holediametermm", "holediameter", "orificediametermm",
                            "lochdurchmessermm", "lochdurchmesser"],
    "discharge_coefficient": ["dischargecoefficientcd", "dischargecoefficient", "cd",
                              "ausflusszahl", "durchflusskoeffizient"],
    "temperature_c": ["airtemperaturec", "airtemperature", "temperaturec", "temperature",
                      "lufttemperatur", "temperatur"],
    "detector_db": ["detectorreadingdb", "detectorreading", "db", "pegel", "pegeldb",
                    "messwertdb", "schallpegel"],
    "detector_distance_m": ["distanceofthereadingm", "distanceofthereading", "distancem",
                            "distance", "abstand", "abstandm", "messabstand"],
}

_UMLAUT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "ae", "Ö": "oe",
                         "Ü": "ue"})


def norm(text) -> str:
    """'Leckrate [l/min]' → 'leckratelmin'; 'Gebäude' → 'gebaeude'; 'Nr.' → 'nr'."""
    text = str(text or "").translate(_UMLAUT).lower()
    text = unicodedata.normalize("NFKD", text)
    return re.sub(r"[^a-z0-9]", "", text.encode("ascii", "ignore").decode())


_LOOKUP: dict[str, str] = {}
for _field, _words in SYNONYMS.items():
    for _w in [norm(EXPORT_HEADERS[_field]), norm(GERMAN_HEADERS[_field])] + _words:
        _LOOKUP.setdefault(_w, _field)
_NOT_READ = {norm(h) for h in (*EXPORT_ONLY_ENGLISH, *_german(EXPORT_ONLY_ENGLISH))}


def suggest(headers: list[str]) -> dict[int, str]:
    """Column index → field. Exact synonym matches first, then headers that start with a
    synonym ("Leckrate in l/min" → rate); each field is used once, the leftmost column wins.
    A site column that is the file's only location column ("Standort" alone) is suggested as
    the location path: it may hold "Werk Süd / Halle 3 / Montage" or a unique code."""
    out = _suggest(headers)
    levels = {"location", "building", "area"} & set(out.values())
    if not levels:
        for i, f in out.items():
            if f == "site":
                out[i] = "location"
    return out


def _suggest(headers: list[str]) -> dict[int, str]:
    out: dict[int, str] = {}
    used: set[str] = set()
    normed = [norm(h) for h in headers]
    for i, n in enumerate(normed):
        field = _LOOKUP.get(n)
        if field and field not in used:
            out[i] = field
            used.add(field)
    for i, n in enumerate(normed):
        if i in out or len(n) < 4 or n in _NOT_READ:
            continue
        for word, field in sorted(_LOOKUP.items(), key=lambda kv: -len(kv[0])):
            if len(word) >= 4 and n.startswith(word) and field not in used:
                out[i] = field
                used.add(field)
                break
    return out


IGNORE = (None, "", "ignore")


def _named(headers: list[str], by_name: dict) -> dict[int, str | None]:
    out = {}
    index = {h: i for i, h in reversed(list(enumerate(headers)))}
    normed = {norm(h): i for i, h in reversed(list(enumerate(headers)))}
    for header, field in by_name.items():
        if field not in IGNORE and (not isinstance(field, str) or field not in FIELDS):
            raise ValueError(f"unknown field {field!r} for column {header!r}; "
                             f"fields: {', '.join(FIELDS)}, ignore")
        i = index.get(header, normed.get(norm(str(header))))
        if i is None:
            raise KeyError(f"the file has no column {header!r}")
        out[i] = field
    return out


def with_overrides(headers: list[str], by_name: dict) -> dict[int, str]:
    """The suggested mapping with the named columns overridden (`leakctl import --mapping`):
    {"Standort": "location"} maps that column and keeps every other suggestion;
    {"Bauteil": "ignore"} (or null) drops that column. A field given to a column is taken away
    from the column the suggestion gave it to, so it is never mapped twice."""
    named = _named(headers, by_name)
    taken = {f for f in named.values() if f not in IGNORE}
    out = {i: f for i, f in suggest(headers).items() if i not in named and f not in taken}
    out.update({i: f for i, f in named.items() if f not in IGNORE})
    return dict(sorted(out.items()))


# ---------------------------------------------------------------- value vocabularies

COMPONENT_WORDS = {
    "coupling": ["coupling", "kupplung", "steckkupplung", "kupplungen"],
    "hose": ["hose", "schlauch", "schlaeuche", "schlauchleitung"],
    "tube": ["tube", "rohr", "leitung", "kunststoffrohr", "tubing", "kunststoffschlauch"],
    "fitting": ["fitting", "verschraubung", "steckverbinder", "verbinder", "fittings",
                "anschluss"],
    "pipe_joint": ["pipejoint", "rohrverbindung", "rohrverbinder", "pipe", "schweissnaht",
                   "muffe"],
    "quick_disconnect": ["quickdisconnect", "schnellkupplung", "schnellverschluss",
                         "schnellverbinder"],
    "frl_unit": ["frlunit", "frl", "wartungseinheit", "filterregler", "druckregler", "regler",
                 "filter", "oeler", "filterreglerler"],
    "condensate_trap": ["condensatetrap", "kondensatableiter", "kondensatablass", "ableiter",
                        "kondensat"],
    "valve": ["valve", "ventil", "magnetventil", "kugelhahn", "hahn", "absperrventil"],
    "flange": ["flange", "flansch"],
    "cylinder": ["cylinder", "zylinder", "pneumatikzylinder"],
    "other": ["other", "sonstiges", "sonstige", "andere", "anderes", "divers"],
}
STATUS_WORDS = {
    "to_review": ["toreview", "zupruefen", "pruefen", "review"],
    "open": ["open", "offen", "neu", "new"],
    "repair_planned": ["repairplanned", "planned", "reparaturgeplant", "geplant",
                       "inbearbeitung", "beauftragt"],
    "repaired": ["repaired", "repariert", "behoben", "erledigt", "fixed", "done"],
    "verified": ["verified", "verifiziert", "geprueft", "bestaetigt", "nachgemessen",
                 "abgenommen"],
    "deferred": ["deferred", "zurueckgestellt", "verschoben", "aufgeschoben", "postponed"],
    "not_a_leak": ["notaleak", "keineleckage", "keinleck", "falschmeldung"],
}
PRIORITY_WORDS = {1: ["1", "high", "hoch", "a", "dringend", "urgent"],
                  2: ["2", "medium", "mittel", "b", "normal"],
                  3: ["3", "low", "niedrig", "gering", "c"]}
METHOD_WORDS = {"device": ["device", "measured", "measuredwithadevice", "gemessen", "messung",
                           "messgeraet", "mitmessgeraetgemessen"],
                "estimate": ["estimate", "estimateclass", "geschaetzt", "schaetzung",
                             "schaetzklasse"],
                "calculated": ["calculated", "berechnet"],
                # Rates calculated in Leakhub from stored inputs (issue 18): an import then
                # needs those inputs, else the row's error names the missing one.
                "orifice": ["orifice", "calculatedfromtheorificeholediameterandpressure",
                            "oeffnung", "ausderoeffnungberechnetlochdurchmesserunddruck"],
                # Not plain "detector": in a vendor's file that means "measured with one".
                "detector": ["detectortable",
                             "calculatedfromadetectorreadingdetectortable", "messgeraetetabelle",
                             "auseinemmesswertdesmessgeraetsberechnetmessgeraetetabelle"]}
ESTIMATE_WORDS = {"minimal": ["minimal", "minimalfeltnotheard", "sehrklein",
                             "minimalfuehlbarnichthoerbar"],
                  "small": ["small", "klein"], "medium": ["medium", "mittel"],
                  "large": ["large", "gross"],
                  "severe": ["severe", "severeheardatadistance", "sehrgross", "extrem",
                             "stark", "starkaufdistanzhoerbar"]}


def _vocab(words: dict) -> dict[str, object]:
    out = {}
    for key, ws in words.items():
        out[norm(key)] = key
        for w in ws:
            out.setdefault(norm(w), key)
    return out


VOCABULARY_KEYS = {"component": list(COMPONENT_WORDS), "status": list(STATUS_WORDS),
                   "priority": list(PRIORITY_WORDS), "method": list(METHOD_WORDS),
                   "estimate_class": list(ESTIMATE_WORDS)}

VOCABULARIES = {
    "component": _vocab(COMPONENT_WORDS),
    "status": _vocab(STATUS_WORDS),
    "priority": _vocab(PRIORITY_WORDS),
    "method": _vocab(METHOD_WORDS),
    "estimate_class": _vocab(ESTIMATE_WORDS),
}


def add_labels(field: str, labels: dict) -> None:
    """Also accept the (translated) labels the application shows, e.g. from an export."""
    vocab = VOCABULARIES[field]
    for key, label in labels.items():
        vocab.setdefault(norm(str(label)), key)


def lookup(field: str, raw):
    """A vocabulary value → its key, or None when unknown."""
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    return VOCABULARIES[field].get(norm(raw))
