"""Pages: /users (administrators: invite, roles, disable/enable, sign-out, grants, effective
access), /organization/settings (administrators), /account/sessions (everyone signed in)."""
from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import refresh
from flask_login import current_user, login_required, logout_user

from .. import authz
from ..authz import grants as grant_service
from ..authz.access import effective_access, find_leak
from ..authz.grants import get_grant, grant_active, grant_target, grant_valid_through, list_grants
from ..authz.models import LEVEL_LABELS, LEVELS
from ..core.pages import member_required
from ..core.validation import ValidationError
from ..departments import service as departments
from ..identity import signout
from ..identity.login import current_actor, current_actor_allowed
from ..identity.models import ROLE_HINTS, ROLE_LABELS, ROLES
from ..identity.sessions import describe_agent, live_sessions, session_ref
from ..identity.signout import sign_out_everywhere
from ..locations import service as locations
from ..locations.models import Location
from ..orgs import tokens as token_settings
from ..orgs.models import LANGUAGE_LABELS, LANGUAGES, MODE_HINTS, MODE_LABELS
from ..orgs.settings import timezones, update_settings
from ..surveys.models import Survey
from . import service

bp = Blueprint("users", __name__)


def _config():
    return current_app.config["LEAKHUB"]



def _labels():
    return {"role_labels": ROLE_LABELS, "role_hints": ROLE_HINTS,
            "level_labels": LEVEL_LABELS, "mode_labels": MODE_LABELS,
            "roles": [(r, ROLE_LABELS[r]) for r in ROLES],
            "levels": [(lv, LEVEL_LABELS[lv]) for lv in LEVELS]}


@bp.app_template_global("users_nav_links")
def users_nav_links():
    """(href, label, test id) of this feature's pages for the signed-in user."""
    if not current_user.is_authenticated:
        return []
    links = []
    actor = None if current_user.is_pending else current_actor()
    if actor is not None and authz.can(actor, "manage_users"):
        # the organization's administrators, and department administrators (their subtree)
        links.append((url_for("users.index"), _("Users"), "nav-users"))
    if actor is not None and authz.can(actor, "manage"):
        links.append((url_for("departments.index"), _("Groups"), "nav-groups"))
        links.append((url_for("users.org_settings"), _("Organization settings"),
                      "nav-org-settings"))
    links.append((url_for("users.my_sessions"), _("My sessions"), "nav-sessions"))
    return links


# --------------------------------------------------------------------------- users

@bp.route("/users")
@member_required
def index():
    actor = current_actor_allowed("manage_users")
    return render_template("users/index.html", users=service.list_users(actor),
                           pending=service.pending_users(actor), **_labels())


@bp.route("/users/invite", methods=["GET", "POST"])
@member_required
def invite():
    actor = current_actor_allowed("manage_users")
    form, errors = {"role": "viewer", "level": "view"}, {}
    if request.method == "POST":
        form = request.form.to_dict()
        try:
            result = service.invite(_config(), actor, email=form.get("email", ""),
                                    role=form.get("role", ""), name=form.get("name", ""),
                                    location_id=form.get("location") or None,
                                    level=form.get("level") or "view")
        except ValidationError as exc:
            errors = exc.errors
        except service.UserError as exc:
            errors = {"": str(exc)}
        else:
            # Rendered, not redirected: the one-time password exists only in this response.
            return render_template("users/invited.html", result=result,
                                   login_url=f"{_config().public_url}/login/"
                                             f"{actor.organization.slug}", **_labels())
    labels = _labels()
    labels["roles"] = [(r, ROLE_LABELS[r]) for r in service.invite_roles(actor)]
    return render_template("users/invite.html", form=form, errors=errors,
                           delegated=not authz.org_wide_admin(actor),
                           locations=_grant_locations(actor), **labels), \
        (422 if errors else 200)


def _grant_locations(actor):
    """The locations the actor may give grants on (a department administrator: his
    subtrees), as <select> options."""
    options = locations.tree_options(actor)
    if authz.org_wide_admin(actor):
        return options
    allowed = set(authz.scope(actor, Location, "manage_users")
                  .select(Location.id).tuples())
    return [(i, label) for i, label in options if (i,) in allowed]


def _detail(actor, user, *, grant_form=None, grant_errors=None, role_errors=None,
            access=None, access_form=None, access_errors=None, code=200):
    tz = actor.organization.timezone
    grants = list_grants(actor, user)
    return render_template(
        "users/detail.html", user=user,
        grants=[(g, grant_target(g), grant_active(g),
                 grant_valid_through(g, tz)) for g in grants],
        memberships=departments.groups_of(actor, user),
        org_admin=authz.org_wide_admin(actor),
        locations=_grant_locations(actor),
        surveys=[(s.id, s.name) for s in authz.scope(actor, Survey, "manage_users")
                 .order_by(Survey.period_start.desc(), Survey.name)],
        grant_form=grant_form or {"level": "view"}, grant_errors=grant_errors or {},
        role_errors=role_errors or {}, access=access, access_form=access_form or {},
        access_errors=access_errors or {},
        sessions=live_sessions(_config(), user), describe_agent=describe_agent,
        **_labels()), code


@bp.route("/users/<int:user_id>")
@member_required
def detail(user_id):
    actor = current_actor_allowed("manage_users")
    return _detail(actor, service.get_user(actor, user_id))


@bp.route("/users/<int:user_id>/role", methods=["POST"])
@member_required
def set_role(user_id):
    actor = current_actor_allowed("manage")
    user = service.get_user(actor, user_id)
    was_pending = user.role is None
    try:
        user = service.set_role(_config(), actor, user, request.form.get("role", ""))
    except ValidationError as exc:
        if request.form.get("from") == "list":
            flash(next(iter(exc.errors.values())), "error")
            return redirect(url_for("users.index"))
        return _detail(actor, user, role_errors=exc.errors, code=422)
    if was_pending:
        flash(_("%(email)s may now use Leakhub as %(role)s.", email=user.email,
                role=ROLE_LABELS[user.role]), "success")
    else:
        flash(_("Role of %(email)s is now %(role)s.", email=user.email,
                role=ROLE_LABELS[user.role]), "success")
    if request.form.get("from") == "list":
        return redirect(url_for("users.index"))
    return redirect(url_for("users.detail", user_id=user.id))


def _toggle(user_id, enabled: bool):
    actor = current_actor_allowed("manage")
    user = service.get_user(actor, user_id)
    try:
        service.set_enabled(_config(), actor, user, enabled)
    except service.UserError as exc:
        flash(str(exc), "error")
    else:
        flash(_("%(email)s is enabled.", email=user.email) if enabled else
              _("%(email)s is disabled; their sessions have ended.", email=user.email),
              "success")
    return redirect(url_for("users.detail", user_id=user.id))


@bp.route("/users/<int:user_id>/disable", methods=["POST"])
@member_required
def disable(user_id):
    return _toggle(user_id, False)


@bp.route("/users/<int:user_id>/enable", methods=["POST"])
@member_required
def enable(user_id):
    return _toggle(user_id, True)


@bp.route("/users/<int:user_id>/sign-out", methods=["POST"])
@member_required
def sign_out_user(user_id):
    actor = current_actor_allowed("manage")
    user = service.get_user(actor, user_id)
    if user.id == actor.user.id:
        return redirect(url_for("users.my_sessions"))
    ended, kc_error = sign_out_everywhere(_config(), actor, user)
    flash(_("%(n)d session(s) of %(email)s ended.", n=ended, email=user.email), "success")
    if kc_error:
        flash(_("The sign-in service could not end the user's sessions: %(error)s",
                error=kc_error), "error")
    return redirect(url_for("users.detail", user_id=user.id))


# --------------------------------------------------------------------------- grants

@bp.route("/users/<int:user_id>/grants", methods=["POST"])
@member_required
def add_grant(user_id):
    actor = current_actor_allowed("manage_users")
    user = service.get_user(actor, user_id)
    form = request.form.to_dict()
    try:
        grant_service.add_grant_from_form(actor, form, user=user)
    except ValidationError as exc:
        return _detail(actor, user, grant_form=form, grant_errors=exc.errors, code=422)
    flash(_("Grant given to %(email)s.", email=user.email), "success")
    return redirect(url_for("users.detail", user_id=user.id))


@bp.route("/users/<int:user_id>/grants/<int:grant_id>/revoke", methods=["POST"])
@member_required
def revoke_grant(user_id, grant_id):
    actor = current_actor_allowed("manage_users")
    user = service.get_user(actor, user_id)
    grant = get_grant(actor, grant_id)
    if grant.user_id != user.id:
        abort(404)
    grant_service.revoke_grant(actor, grant)
    flash(_("Grant revoked; it no longer applies from %(email)s's next click.",
            email=user.email), "success")
    return redirect(url_for("users.detail", user_id=user.id))


@bp.route("/users/<int:user_id>/access")
@member_required
def access(user_id):
    actor = current_actor_allowed("manage_users")
    user = service.get_user(actor, user_id)
    form = {"leak": (request.args.get("leak") or "").strip()[:32],
            "leak_id": (request.args.get("leak_id") or "").strip()[:18]}
    try:
        leak = find_leak(actor, tag=form["leak"], leak_id=form["leak_id"])
    except ValidationError as exc:
        return _detail(actor, user, access_form=form, access_errors=exc.errors, code=422)
    form["leak"] = leak.tag
    return _detail(actor, user, access=effective_access(actor, user, leak),
                   access_form=form)


# --------------------------------------------------------------------------- settings

def _settings_page(actor, form, errors, *, token_form=None, token_errors=None, code=200):
    """The organization settings page; each of its forms comes back with what was typed and
    its errors beside the fields."""
    org = actor.organization
    if token_form is None:
        token_form = {name: getattr(org, name) for name in token_settings.BOUNDS}
        token_form["remember_me"] = "on" if org.remember_me else ""
    return render_template(
        "users/settings.html", org=org, form=form, errors=errors,
        modes=[(m, MODE_LABELS[m], MODE_HINTS[m]) for m in sorted(MODE_LABELS)],
        timezones=timezones(),
        languages=[(lang, LANGUAGE_LABELS.get(lang, lang)) for lang in LANGUAGES],
        token_bounds=token_settings.BOUNDS, token_form=token_form,
        token_errors=token_errors or {},
    ), code


def _org_settings_form(org) -> dict:
    return {"security_mode": org.security_mode, "timezone": org.timezone,
            "language": org.language}


@bp.route("/organization/settings", methods=["GET", "POST"])
@member_required
def org_settings():
    actor = current_actor_allowed("manage")
    form = _org_settings_form(actor.organization)
    errors = {}
    if request.method == "POST":
        form = request.form.to_dict()
        try:
            update_settings(actor, request.form)
        except ValidationError as exc:
            errors = exc.errors
        else:
            flash(_("Organization settings saved."), "success")
            return redirect(url_for("users.org_settings"))
    return _settings_page(actor, form, errors, code=422 if errors else 200)


@bp.route("/organization/tokens", methods=["POST"])
@member_required
def org_tokens():
    """Token settings (orgs.tokens). Refused values come back on the settings page as typed,
    the message at the field (422); Keycloak not answering keeps them too (502)."""
    actor = current_actor_allowed("manage")
    typed = {name: (request.form.get(name) or "")[:20]
             for name in (*token_settings.BOUNDS, "remember_me")}
    try:
        token_settings.set_token_settings(_config(), actor, request.form)
    except ValidationError as exc:
        return _settings_page(actor, _org_settings_form(actor.organization), {},
                              token_form=typed, token_errors=exc.errors, code=422)
    except token_settings.TokenSettingsError as exc:
        return _settings_page(actor, _org_settings_form(actor.organization), {},
                              token_form=typed, token_errors={"": str(exc)}, code=502)
    flash(_("Token settings saved."), "success")
    return redirect(url_for("users.org_settings"))


# --------------------------------------------------------------------------- my sessions

def _my_page(errors=None, code=200):
    user = current_user.user
    current = getattr(session, "row", None)
    rows = live_sessions(_config(), user)
    org_language = LANGUAGE_LABELS.get(current_user.organization.language,
                                       current_user.organization.language)
    return render_template(
        "users/sessions.html",
        sessions=[(row, session_ref(row), describe_agent(row.user_agent),
                   current is not None and row.id == current.id) for row in rows],
        language_form={"language": user.language or ""}, language_errors=errors or {},
        languages=[("", _("As the organization (%(language)s)", language=org_language))]
        + [(code, LANGUAGE_LABELS.get(code, code)) for code in LANGUAGES]), code


@bp.route("/account/sessions")
@login_required
def my_sessions():
    return _my_page()


@bp.route("/account/language", methods=["POST"])
@login_required
def my_language():
    """The signed-in user's own language (Leakhub and Keycloak's pages)."""
    try:
        saved, warning = service.set_language(_config(), current_actor(),
                                              request.form.get("language", ""))
    except ValidationError as exc:
        return _my_page(exc.errors, 422)
    current_user.user.language = saved.language
    refresh()  # the confirmation already in the new language
    flash(_("Language saved."), "success")
    if warning:
        flash(warning, "error")
    return redirect(url_for("users.my_sessions"))


@bp.route("/account/sessions/end", methods=["POST"])
@login_required
def end_session():
    actor = current_actor()
    ref = (request.form.get("session") or "")[:64]
    current = getattr(session, "row", None)
    if current is not None and ref == session_ref(current):
        return redirect(url_for("users.my_sessions"))  # the header's "Sign out" does that
    if signout.end_session(_config(), actor, ref, current_sid=session.get("kc_sid")):
        flash(_("The session was signed out."), "success")
    else:
        flash(_("That session has ended already."), "error")
    return redirect(url_for("users.my_sessions"))


@bp.route("/account/sessions/end-all", methods=["POST"])
@login_required
def end_all_sessions():
    actor = current_actor()
    user = current_user.user
    _ended, kc_error = sign_out_everywhere(_config(), actor, user)
    logout_user()
    session.clear()
    if kc_error:
        return redirect(url_for("users.signed_out_everywhere", keycloak="failed"))
    return redirect(url_for("identity.signed_out"))


@bp.route("/account/signed-out")
def signed_out_everywhere():
    """After "sign out everywhere" when the sign-in service could not end its sessions."""
    return render_template("users/signed_out_everywhere.html",
                           keycloak_failed=request.args.get("keycloak") == "failed")
