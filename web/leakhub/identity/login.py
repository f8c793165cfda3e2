"""flask-login wiring: the signed-in user is re-read from the database on every request,
so a disabled user or a removed role takes effect at the next click (DESIGN §3.3)."""
from __future__ import annotations

from flask import redirect, request, session, url_for
from flask_login import LoginManager, UserMixin

from ..authz import Actor, require
from .models import User

login_manager = LoginManager()


class SignedInUser(UserMixin):
    def __init__(self, user: User):
        self.user = user
        self.organization = user.organization

    def get_id(self):
        return str(self.user.id)

    @property
    def is_pending(self):
        return self.user.role is None


@login_manager.user_loader
def _load(user_id: str):
    try:
        uid = int(user_id)
    except (TypeError, ValueError):
        return None
    user = User.get_or_none(User.id == uid)
    if user is None or not user.enabled or user.organization_id != session.get("org_id"):
        return None
    return SignedInUser(user)


@login_manager.unauthorized_handler
def _unauthorized():
    if request.path.startswith("/api/"):
        from flask import abort

        abort(401)
    return redirect(url_for("identity.login", next=request.full_path.rstrip("?")))


def current_actor():
    """The Actor for this request (rebuilt per request from the database)."""
    from flask import abort, g
    from flask_login import current_user

    if not current_user.is_authenticated:
        abort(401)
    actor = g.get("actor")
    if actor is None:
        actor = g.actor = Actor(organization=current_user.organization, kind="user",
                                user=current_user.user, ip=request.remote_addr,
                                request_id=g.get("request_id"))
    return actor


def current_actor_allowed(permission: str) -> Actor:
    """The request's Actor once authz allows it `permission` (403 otherwise)."""
    actor = current_actor()
    require(actor, permission)
    return actor
