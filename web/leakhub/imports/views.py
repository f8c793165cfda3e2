"""Import pages: upload → column mapping with preview → commit.

The uploaded file is staged in the uploads storage (content-hash key, per organization) and
its key is remembered in the (server-side) session, so the steps work across web replicas and
nobody else can commit someone's staged file. Staged files older than a day are removed.
"""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from .. import authz
from ..core.db import utcnow
from ..core.pages import member_required
from ..core.validation import ValidationError
from ..core.web import safe_next
from ..identity.login import current_actor
from ..photos.storage import FileStorage, uploads_root
from . import formats, mapping, service

bp = Blueprint("imports", __name__)
SESSION_KEY = "leak_imports"
STAGING_MAX_AGE = dt.timedelta(days=1)


def staging(org) -> FileStorage:
    return FileStorage(uploads_root() / "imports" / str(int(org.id)))


def _purge(store: FileStorage) -> None:
    now = utcnow()
    for key in list(store.keys()):
        mtime = store.modified_at(key)
        if mtime is not None and now - mtime > STAGING_MAX_AGE:
            store.delete(key)


def _staged(actor, key):
    entry = (session.get(SESSION_KEY) or {}).get(key)
    if not entry or entry.get("org") != actor.organization.id:
        abort(404)
    store = staging(actor.organization)
    try:
        data = store.read(key)
    except (FileNotFoundError, ValueError):
        abort(404)
    return entry, data


def _reason(exc: formats.FormatError) -> str:
    return str(service.format_error(exc)) if isinstance(exc, formats.FieldTooLong) else str(exc)


def _options(form) -> service.Options:
    return service.Options(update_existing=form.get("update_existing") == "1",
                           create_locations=form.get("create_locations") == "1")


@bp.route("/leaks/import", methods=["GET", "POST"])
@member_required
def upload():
    actor = current_actor()
    authz.require(actor, "create")
    presets = service.list_presets(actor)

    def page(error=None):
        return render_template("imports/upload.html", formats=formats.REGISTRY, error=error,
                               presets=presets, builtin=sorted(service.BUILTIN_PRESETS),
                               can_manage=authz.can(actor, "manage"))
    if request.method == "GET":
        return page()
    f = request.files.get("file")
    data = f.read() if f else b""
    name = (f.filename or "upload") if f else ""
    if not data:
        return page(_("Choose a CSV or XLSX file.")), 422
    try:
        _fmt, headers = service.headers_of(data, name)  # format and header row readable
    except formats.FormatError as exc:
        return page(_("%(name)s cannot be imported: %(e)s", name=name, e=_reason(exc))), 422
    preset = (request.form.get("preset") or "").strip()
    if preset:
        try:
            service.preset_column_map(actor, preset, headers)
        except ValidationError as exc:
            return page(next(iter(exc.errors.values()))), 422
    store = staging(actor.organization)
    _purge(store)
    key = store.put(data)
    staged = dict(session.get(SESSION_KEY) or {})
    staged = dict(list(staged.items())[-4:])  # a few at most
    staged[key] = {"org": actor.organization.id, "filename": name[:200]}
    session[SESSION_KEY] = staged
    return redirect(url_for("imports.review", key=key, preset=preset or None))


@bp.route("/leaks/import/<key>", methods=["GET", "POST"])
@member_required
def review(key):
    actor = current_actor()
    authz.require(actor, "create")
    entry, data = _staged(actor, key)
    filename = entry["filename"]
    try:
        _fmt, headers = service.headers_of(data, filename)
    except formats.FormatError as exc:
        flash(_("%(name)s cannot be imported: %(e)s", name=filename, e=_reason(exc)), "error")
        return redirect(url_for("imports.upload"))
    action = request.form.get("action") if request.method == "POST" else None
    preset = (request.values.get("preset") or "").strip()
    preset_error, saved = None, None
    if request.method == "POST":
        column_map = service.parse_mapping_form(request.form, headers)
        options = _options(request.form)
    else:
        column_map = mapping.suggest(headers)
        options = service.Options()
    try:
        if preset and action in (None, "apply_preset"):
            column_map = service.preset_column_map(actor, preset, headers)
        elif action == "save_preset":
            saved = service.save_preset(actor, request.form.get("preset_name"), headers,
                                        column_map)
    except ValidationError as exc:
        preset_error = next(iter(exc.errors.values()))
    commit = action == "commit"
    result = service.run_import(actor, data, filename, column_map=column_map, options=options,
                                dry_run=not commit)
    if result.committed:
        staging(actor.organization).delete(key)
        staged = dict(session.get(SESSION_KEY) or {})
        staged.pop(key, None)
        session[SESSION_KEY] = staged
        flash(_("Imported %(name)s: %(new)d new, %(changed)d updated, %(same)d unchanged.",
                name=filename, new=result.new, changed=result.changed, same=result.unchanged),
              "success")
        return redirect("/leaks")
    code = 200 if result.ok or not commit else 422
    if preset_error:
        code = 422
    if saved is not None:
        flash(_("Preset “%(name)s” saved.", name=saved.name), "success")
    return render_template("imports/review.html", key=key, filename=filename, headers=headers,
                           result=result, fields=mapping.FIELDS, options=options,
                           presets=service.list_presets(actor),
                           builtin=sorted(service.BUILTIN_PRESETS), preset=preset,
                           preset_error=preset_error,
                           preset_name=request.form.get("preset_name", "")), code


@bp.route("/leaks/import/presets/<int:preset_id>/delete", methods=["POST"])
@member_required
def delete_preset(preset_id):
    actor = current_actor()
    authz.require(actor, "create")
    service.delete_preset(actor, preset_id)
    flash(_("Preset deleted."), "success")
    return redirect(safe_next(request.form.get("next"), default=url_for("imports.upload")))
