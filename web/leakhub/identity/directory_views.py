"""The administrators' Company directory page (/organization/directory): the LDAP / Active
Directory federation (save, test the bind, remove) and external OpenID Connect providers.
Secrets are typed into password fields, sent to Keycloak and never shown again."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ..core.pages import member_required
from ..core.validation import ValidationError
from . import directory
from .login import current_actor_allowed

bp = Blueprint("directory", __name__)

LDAP_FIELDS = ("preset", "connection_url", "start_tls", "bind_dn", "bind_secret", "users_dn",
               "username_attribute", "user_object_classes", "user_filter", "groups_dn",
               "sync_minutes")
OIDC_FIELDS = ("alias", "display_name", "issuer", "client_id", "client_secret",
               "discovery_url")


def _config():
    return current_app.config["LEAKHUB"]



def _page(actor, *, ldap_form=None, ldap_errors=None, oidc_form=None, oidc_errors=None):
    problem = ""
    current, providers = None, []
    try:
        current = directory.show_ldap(_config(), actor)
        providers = directory.list_oidc(_config(), actor)
    except directory.DirectoryError as exc:
        problem = str(exc)
    if ldap_form is None:
        ldap_form = dict(current or {"preset": "ad", "sync_minutes": 0})
        ldap_form.pop("bind_secret", None)
    errors = bool(ldap_errors or oidc_errors)
    return render_template(
        "identity/directory.html", org=actor.organization, current=current,
        providers=providers, problem=problem, ldap_form=ldap_form,
        ldap_errors=ldap_errors or {}, oidc_form=oidc_form or {"alias": "company"},
        oidc_errors=oidc_errors or {},
        presets=[("ad", _("Active Directory")), ("openldap", _("OpenLDAP"))],
        redirect_uri=f"{_config().issuer_for(actor.organization.slug)}/broker/"
                     f"{(oidc_form or {}).get('alias') or 'company'}/endpoint",
    ), (422 if errors else 200)


@bp.route("/organization/directory")
@member_required
def index():
    return _page(current_actor_allowed("manage"))


@bp.route("/organization/directory/ldap", methods=["POST"])
@member_required
def save_ldap():
    actor = current_actor_allowed("manage")
    form = {k: request.form.get(k) for k in LDAP_FIELDS}
    try:
        directory.set_ldap(_config(), actor, form)
    except ValidationError as exc:
        form.pop("bind_secret", None)
        return _page(actor, ldap_form=form, ldap_errors=exc.errors)
    except directory.DirectoryError as exc:
        form.pop("bind_secret", None)
        return _page(actor, ldap_form=form, ldap_errors={"": str(exc)})
    flash(_("Directory settings saved."), "success")
    return redirect(url_for("directory.index"))


@bp.route("/organization/directory/ldap/test", methods=["POST"])
@member_required
def test_ldap():
    actor = current_actor_allowed("manage")
    try:
        directory.test_ldap(_config(), actor)
    except (directory.DirectoryError, ValidationError) as exc:
        flash(str(exc), "error")
    else:
        flash(_("Connection and bind to the directory succeeded."), "success")
    return redirect(url_for("directory.index"))


@bp.route("/organization/directory/ldap/remove", methods=["POST"])
@member_required
def remove_ldap():
    actor = current_actor_allowed("manage")
    try:
        removed = directory.remove_ldap(_config(), actor)
    except directory.DirectoryError as exc:
        flash(str(exc), "error")
    else:
        flash(_("Directory removed.") if removed else _("No directory was configured."),
              "success")
    return redirect(url_for("directory.index"))


@bp.route("/organization/directory/oidc", methods=["POST"])
@member_required
def save_oidc():
    actor = current_actor_allowed("manage")
    form = {k: request.form.get(k) for k in OIDC_FIELDS}
    try:
        directory.set_oidc(_config(), actor, form)
    except ValidationError as exc:
        form.pop("client_secret", None)
        return _page(actor, oidc_form=form, oidc_errors=exc.errors)
    except directory.DirectoryError as exc:
        form.pop("client_secret", None)
        return _page(actor, oidc_form=form, oidc_errors={"": str(exc)})
    flash(_("Identity provider saved."), "success")
    return redirect(url_for("directory.index"))


@bp.route("/organization/directory/oidc/remove", methods=["POST"])
@member_required
def remove_oidc():
    actor = current_actor_allowed("manage")
    alias = (request.form.get("alias") or "").strip()
    try:
        removed = directory.remove_oidc(_config(), actor, alias) if alias else False
    except directory.DirectoryError as exc:
        flash(str(exc), "error")
    else:
        flash(_("Identity provider removed.") if removed else
              _("No such identity provider."), "success")
    return redirect(url_for("directory.index"))
