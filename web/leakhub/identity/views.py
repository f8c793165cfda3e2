"""Sign-in through the organization's Keycloak realm (authorization code + PKCE S256,
state and nonce), sign-out that also ends the Keycloak session, back-channel logout."""
from __future__ import annotations

import logging
import secrets
from urllib.parse import urlencode

import requests
from authlib.integrations.requests_client import OAuth2Session
from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from ..audit import writer
from ..authz import Actor
from ..core.db import utcnow
from ..core.web import csrf_exempt, safe_next
from ..departments.service import sync_directory_groups
from ..orgs.models import ORG_COOKIE, Organization
from ..security.events import record as record_security_event
from .login import SignedInUser
from .models import User, WebSession
from .tokens import TokenError, realm_keys, verify_jwt

bp = Blueprint("identity", __name__)
log = logging.getLogger("leakhub.identity")

CLIENT_ID = "leakhub"
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def _config():
    return current_app.config["LEAKHUB"]


def _redirect_uri(slug: str) -> str:
    return f"{_config().public_url}/oidc/callback/{slug}"


def _org_or_404(slug: str) -> Organization:
    org = Organization.get_or_none(Organization.slug == slug)
    if org is None:
        abort(404, description=_("There is no organization %(slug)s.", slug=slug))
    return org


@bp.route("/login")
def login():
    nxt = safe_next(request.args.get("next"))
    slug = request.args.get("org") or request.cookies.get(ORG_COOKIE)
    if slug and Organization.get_or_none(Organization.slug == slug):
        return redirect(url_for("identity.login_org", slug=slug, next=nxt))
    orgs = Organization.select().limit(2)
    if len(orgs) == 1:
        return redirect(url_for("identity.login_org", slug=orgs[0].slug, next=nxt))
    return render_template("identity/choose_org.html", next=nxt, unknown=slug)


@bp.route("/login/<slug>")
def login_org(slug):
    org = _org_or_404(slug)
    config = _config()
    try:
        meta = realm_keys(config, org.slug).metadata()
    except requests.RequestException:
        abort(503, description=_("The sign-in service is not reachable. Try again shortly."))
    state, nonce, verifier = (secrets.token_urlsafe(24), secrets.token_urlsafe(24),
                              secrets.token_urlsafe(48))
    client = OAuth2Session(CLIENT_ID, org.oidc_client_secret, scope="openid email profile",
                           redirect_uri=_redirect_uri(org.slug), code_challenge_method="S256")
    url, _state = client.create_authorization_url(
        meta["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier)
    session["oidc"] = {"org": org.slug, "state": state, "nonce": nonce, "verifier": verifier,
                       "next": safe_next(request.args.get("next"))}
    resp = redirect(url)
    resp.set_cookie(ORG_COOKIE, org.slug, max_age=3600 * 24 * 365, secure=config.secure_cookies,
                    httponly=True, samesite="Lax")
    return resp


@bp.route("/oidc/callback/<slug>")
def callback(slug):
    org = _org_or_404(slug)
    config = _config()
    pending = session.pop("oidc", None)
    if request.args.get("error"):
        log.info("sign-in cancelled or refused by Keycloak", extra={"org": slug})
        record_security_event("sign_in_failed", organization=org, details={
            "reason": "refused_by_keycloak", "error": request.args.get("error", "")[:64]})
        return render_template("identity/signin_failed.html", org=org), 400
    if (not pending or pending.get("org") != org.slug
            or not secrets.compare_digest(  # bytes: a non-ASCII state is wrong, not a 500
                str(pending.get("state", "")).encode("utf-8"),
                request.args.get("state", "").encode("utf-8", "surrogatepass"))):
        g.security_event = "login_state_mismatch"
        record_security_event("sign_in_failed", organization=org,
                              details={"reason": "state_mismatch"})
        return render_template("identity/signin_failed.html", org=org), 400
    keys = realm_keys(config, org.slug)
    client = OAuth2Session(CLIENT_ID, org.oidc_client_secret, redirect_uri=_redirect_uri(org.slug))
    try:
        token = client.fetch_token(keys.metadata()["token_endpoint"],
                                   code=request.args.get("code", ""),
                                   code_verifier=pending["verifier"],
                                   grant_type="authorization_code")
    except Exception as exc:  # authlib raises several types; none may reach the user
        log.warning("token exchange failed: %s", type(exc).__name__, extra={"org": slug})
        record_security_event("sign_in_failed", organization=org, details={
            "reason": "token_exchange_failed", "error": type(exc).__name__})
        return render_template("identity/signin_failed.html", org=org), 400
    try:
        claims = verify_jwt(token.get("id_token", ""), keys, issuer=config.issuer_for(org.slug),
                            audience=CLIENT_ID, required=("exp", "iat", "iss", "sub", "aud"),
                            extra_claims={"nonce": {"essential": True, "value": pending["nonce"]}})
    except TokenError as exc:
        log.warning("ID token rejected: %s", exc, extra={"org": slug})
        record_security_event("token_rejected", organization=org,
                              details={"what": "id_token", "reason": str(exc)})
        return render_template("identity/signin_failed.html", org=org), 400

    user = User.get_or_none((User.organization == org) & (User.sub == claims["sub"]))
    email = (claims.get("email") or "").lower()
    name = claims.get("name") or " ".join(
        p for p in (claims.get("given_name"), claims.get("family_name")) if p)
    if user is None:
        # Signed in without an invitation: mirrored with no role, waits for an admin.
        user = writer.create(Actor.system(org, label="sign-in", ip=request.remote_addr,
                                          request_id=g.get("request_id")),
                             User, sub=claims["sub"], email=email, name=name, role=None)
    if not user.enabled:
        record_security_event("sign_in_failed", organization=org, user=user,
                              details={"reason": "user_disabled"})
        return render_template("identity/disabled.html", org=org), 403
    # Keeping the mirror in step with Keycloak is not a change by a person: no audit entry.
    User.update(email=email or user.email, name=name or user.name,
                last_login_at=utcnow()).where(User.id == user.id).execute()
    # Departments mapped to directory groups follow the `groups` claim (the realm's group
    # membership mapper; an absent claim means no groups). Audited as "directory sync".
    sync_directory_groups(user, claims.get("groups") or [])

    session.clear()
    session.regenerate()
    session["org_id"] = org.id
    session["kc_sid"] = claims.get("sid")
    session["id_token_hint"] = token.get("id_token")
    login_user(SignedInUser(user))
    log.info("signed in", extra={"org": slug, "user_id": user.id})
    record_security_event("sign_in", organization=org, user=user)
    return redirect(pending.get("next") or "/")


@bp.route("/logout", methods=["POST"])
def logout():
    config = _config()
    id_token = session.get("id_token_hint")
    org = Organization.get_or_none(Organization.id == session.get("org_id"))
    record_security_event("sign_out", organization=org,
                          user=current_user.user if current_user.is_authenticated else None)
    logout_user()
    session.clear()
    if org is None or not id_token:
        return redirect(url_for("identity.signed_out"))
    try:
        end_session = realm_keys(config, org.slug).metadata()["end_session_endpoint"]
    except requests.RequestException:
        return redirect(url_for("identity.signed_out"))
    query = urlencode({"id_token_hint": id_token, "client_id": CLIENT_ID,
                       "post_logout_redirect_uri": f"{config.public_url}/signed-out"})
    return redirect(f"{end_session}?{query}")


@bp.route("/signed-out")
def signed_out():
    return render_template("identity/signed_out.html")


@bp.route("/oidc/backchannel-logout/<slug>", methods=["POST"])
@csrf_exempt
def backchannel_logout(slug):
    """Keycloak ends a session (admin, other app, idle): end ours too. OIDC Back-Channel
    Logout 1.0 §2.6: signature, iss, aud, iat, events claim, sid or sub, and no nonce."""
    org = Organization.get_or_none(Organization.slug == slug)
    if org is None:
        return {"error": "invalid_request"}, 400
    config = _config()
    try:
        claims = verify_jwt(request.form.get("logout_token", ""), realm_keys(config, slug),
                            issuer=config.issuer_for(slug), audience=CLIENT_ID,
                            required=("iat", "iss", "aud"))
    except TokenError as exc:
        log.warning("logout token rejected: %s", exc, extra={"org": slug})
        record_security_event("token_rejected", organization=org,
                              details={"what": "logout_token", "reason": str(exc)})
        return {"error": "invalid_request"}, 400
    events = claims.get("events")
    if not isinstance(events, dict) or LOGOUT_EVENT not in events or "nonce" in claims \
            or not (claims.get("sid") or claims.get("sub")):
        return {"error": "invalid_request"}, 400
    query = WebSession.delete().where(WebSession.organization == org)
    if claims.get("sid"):
        query = query.where(WebSession.kc_sid == claims["sid"])
    else:
        users = User.select(User.id).where((User.organization == org) & (User.sub == claims["sub"]))
        query = query.where(WebSession.user.in_(users))
    ended = query.execute()
    log.info("back-channel logout ended %d session(s)", ended, extra={"org": slug})
    record_security_event("sign_out", organization=org,
                          details={"via": "back-channel", "sessions_ended": ended})
    return "", 200

