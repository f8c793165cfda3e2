"""A browser without JavaScript for the integration tests and bench/bench_load.py: a signed-in
`requests` session through Caddy opens a page, reads its form (hidden fields such as csrf_token
and version, the selected options, the textareas) as a browser would submit it, changes some
values and submits it; make_world and record_leak build data through those forms."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin


class _FormParser(HTMLParser):
    """Every <form> of a page with what a browser would submit by default."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._form = None
        self._select = None
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = {"attrs": a, "fields": []}
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input" and a.get("name"):
            kind = (a.get("type") or "text").lower()
            if kind in ("submit", "button", "image", "reset", "file"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self._form["fields"].append((a["name"], a.get("value") or ("on" if kind in (
                "checkbox", "radio") else "")))
        elif tag == "select":
            self._select = {"name": a.get("name"), "selected": [], "first": None,
                            "multiple": "multiple" in a}
        elif tag == "option" and self._select is not None:
            value = a.get("value", "")
            if self._select["first"] is None:
                self._select["first"] = value
            if "selected" in a:
                self._select["selected"].append(value)
        elif tag == "textarea":
            self._textarea = [a.get("name"), ""]

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select" and self._select is not None:
            sel = self._select
            values = sel["selected"] or ([] if sel["multiple"] or sel["first"] is None
                                         else [sel["first"]])
            if self._form is not None and sel["name"]:
                self._form["fields"].extend((sel["name"], v) for v in values)
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            if self._form is not None and self._textarea[0]:
                self._form["fields"].append(tuple(self._textarea))
            self._textarea = None


class Form:
    def __init__(self, page_url: str, attrs: dict, fields: list):
        self.url = urljoin(page_url, attrs.get("action") or page_url)
        self.attrs = attrs
        self.fields = list(fields)

    def get(self, name):
        return next((v for k, v in self.fields if k == name), None)

    def set(self, name, *values):
        self.fields = [(k, v) for k, v in self.fields if k != name]
        self.fields.extend((name, str(v)) for v in values)
        return self


class Browser:
    """A signed-in session through Caddy (HTTPS, the stack's CA)."""

    def __init__(self, stack, http):
        self.stack, self.http = stack, http

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.stack.public_url + path

    def get(self, path: str, **kw):
        resp = self.http.get(self.url(path), **kw)
        return resp

    def page(self, path: str) -> str:
        resp = self.get(path)
        assert resp.status_code == 200, (path, resp.status_code, resp.text[:2000])
        return resp.text

    def form(self, path_or_resp, action: str | None = None) -> Form:
        """The form whose action is `action` (None: the page's own URL) on the page."""
        resp = self.get(path_or_resp) if isinstance(path_or_resp, str) else path_or_resp
        parser = _FormParser()
        parser.feed(resp.text)
        for f in parser.forms:
            if (f["attrs"].get("method") or "get").lower() != "post":
                continue
            form = Form(resp.url, f["attrs"], f["fields"])
            if form.url.split("#")[0] == urljoin(resp.url, action or resp.url):
                assert form.get("csrf_token"), f"no csrf_token in the form on {resp.url}"
                return form
        raise AssertionError(f"no POST form to {action} on {resp.url}:\n{resp.text[:3000]}")

    def submit(self, form: Form, files=None, **kw):
        kw.setdefault("allow_redirects", False)
        return self.http.post(form.url, data=form.fields, files=files,
                              headers={"Origin": self.stack.public_url}, **kw)


def location_of(resp) -> str:
    assert resp.status_code in (302, 303), (resp.status_code, resp.text[:3000])
    return resp.headers["Location"]


def id_from(resp, prefix: str) -> int:
    m = re.search(rf"{prefix}/(\d+)$", location_of(resp))
    assert m, resp.headers["Location"]
    return int(m.group(1))


def make_world(app: Browser) -> dict:
    """BER/H1/A1 and MUC ("Werk München") and a survey over BER, through their forms."""
    ids = {}
    for key, kind, code, name, parent in (("site", "site", "BER", "Werk Berlin", None),
                                          ("hall", "building", "H1", "Halle 1", "site"),
                                          ("area", "area", "A1", "Montage", "hall"),
                                          ("site2", "site", "MUC", "Werk München", None)):
        form = app.form("/locations/new").set("kind", kind).set("code", code).set("name", name)
        form.set("parent", ids[parent] if parent else "")
        ids[key] = id_from(app.submit(form), "/locations")
    form = app.form("/surveys/new").set("name", "Frühjahr 2024").set("status", "in_progress")
    form.set("period_start", "01.03.2024").set("scope", ids["site"])
    ids["survey"] = id_from(app.submit(form), "/surveys")
    return ids


def record_leak(app: Browser, location: int, *, tag="", survey="", rate="12,5",
                component="frl_unit", description="Wartungseinheit zischt") -> int:
    form = app.form("/leaks/new")
    form.set("tag", tag).set("location", location).set("survey", survey)
    form.set("found_at", "2024-03-05T10:15").set("rate_lpm", rate).set("pressure_bar", "6,5")
    form.set("component", component).set("description", description)
    return id_from(app.submit(form), "/leaks")
