"""Creating and listing organizations. Used by `leakctl org`, setup and the tests."""
from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from ..audit import writer
from ..authz import Actor
from ..core.config import SLUG_RE
from ..core.db import database
from ..core.errors import Invalid
from ..core.validation import Fields, validate_email
from ..identity.keycloak import admin_client
from ..identity.keycloak_admin import KeycloakConflict, KeycloakError, render_realm
from ..identity.models import User
from .models import Organization

RESERVED_SLUGS = {"master", "admin", "auth", "api", "static", "oidc", "login", "logout"}


class OrgError(Invalid):
    """One readable line for the CLI and the web."""


@dataclass
class CreatedOrg:
    organization: Organization
    admin_email: str
    admin_password: str | None  # one-time password; None when the org already existed


def one_time_password() -> str:
    # Readable, satisfies length(8) and the realm's policy; the user must change it at first login.
    alphabet = string.ascii_letters + string.digits
    return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))


def validate_slug(slug: str) -> str:
    if not SLUG_RE.match(slug or ""):
        raise OrgError(f"slug {slug!r} is invalid: use 3-40 lowercase letters, digits or '-', "
                       "starting with a letter")
    if slug in RESERVED_SLUGS:
        raise OrgError(f"slug {slug!r} is reserved")
    return slug


def _admin_email(email: str) -> str:
    f = Fields({"admin_email": email})
    value = validate_email(f, "admin_email")
    if f.errors:
        raise OrgError(f"admin e-mail {(email or '').strip()!r} is not a valid address")
    return value


def create_organization(config, *, slug: str, name: str, admin_email: str,
                        exist_ok: bool = False) -> CreatedOrg:
    """Realm from the template, Leakhub's OIDC client, the first admin; then the DB row.

    Keycloak first: if it fails nothing is written here. If the DB write fails after the realm
    was made, the realm is removed again so a retry starts clean.
    """
    validate_slug(slug)
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise OrgError("name must be 1-200 characters")
    admin_email = _admin_email(admin_email)
    existing = Organization.get_or_none(Organization.slug == slug)
    if existing is not None:
        if exist_ok:
            return CreatedOrg(existing, admin_email, None)
        raise OrgError(f"organization {slug!r} already exists")
    kc = admin_client(config)
    try:
        if kc.realm_exists(slug):
            raise OrgError(f"slug {slug!r} is taken: Keycloak already has a realm of that name")
        client_secret = secrets.token_urlsafe(32)
        realm = render_realm(
            config.realm_template, slug=slug, name=name, public_url=config.public_url,
            internal_url=config.internal_url, app_client_secret=client_secret,
        )
        # "Forgot password?" only when Keycloak can send the e-mail (LEAKHUB_SMTP_HOST).
        realm["resetPasswordAllowed"] = config.smtp is not None
        kc.create_realm(realm)
    except KeycloakConflict:
        raise OrgError(
            f"slug {slug!r} is taken: Keycloak already has a realm of that name") from None
    except KeycloakError as exc:
        raise OrgError(str(exc)) from None
    password = one_time_password()
    try:
        user_id = kc.create_user(slug, email=admin_email, temporary_password=password,
                                 required_actions=("UPDATE_PASSWORD",))
        with database.atomic():
            org = Organization.create(slug=slug, name=name, oidc_client_secret=client_secret)
            admin = User.create(organization=org, sub=user_id, email=admin_email, role="admin")
            actor = Actor.system(org, label="leakctl")
            writer.event(actor, "organization.created", entity=org,
                         details={"slug": slug, "name": name})
            writer.event(actor, "user.invited", entity=admin,
                         details={"email": admin_email, "role": "admin"})
    except BaseException as exc:
        try:
            kc.delete_realm(slug)
        except KeycloakError:
            pass
        if isinstance(exc, KeycloakError):
            raise OrgError(str(exc)) from None
        raise
    return CreatedOrg(org, admin_email, password)


def list_organizations():
    return list(Organization.select().order_by(Organization.slug))
