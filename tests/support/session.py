"""Signing a Flask test client in without Keycloak: the session keys the app's login sets."""
from __future__ import annotations


def sign_in(client, user, csrf="t"):
    """`client` is signed in as `user` (its organization, fresh) with the CSRF token `csrf`."""
    with client.session_transaction() as s:
        s["org_id"] = user.organization_id
        s["_user_id"] = str(user.id)
        s["_fresh"] = True
        s["csrf"] = csrf
