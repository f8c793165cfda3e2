"""Security events from the real Keycloak: failed sign-ins and the lock-out are pulled by the
sync job (twice: no duplicates) and the review turns them into one finding."""
import json

from support.kc import new_org, start_login, submit_password


def _models(stack):
    """This process reads the stack's database directly (the CLI has no event listing)."""
    from leakhub.core.config import Config
    from leakhub.core.db import init_database
    from leakhub.orgs.models import Organization
    from leakhub.security.models import Finding, SecurityEvent

    init_database(Config.from_env(stack.env))
    return Organization, SecurityEvent, Finding


def test_failed_sign_ins_are_synced_once_and_reviewed(stack):
    slug, email, otp = new_org(stack, "sec")
    http = stack.requests_session()
    page = start_login(http, stack, slug)
    for _ in range(3):
        page = submit_password(http, page, email, "wrong-password")
    page = submit_password(http, page, email, otp)  # locked by now: refused
    assert "/auth/realms/" in page.url

    stack.leakctl("security", "sync")
    Organization, SecurityEvent, Finding = _models(stack)
    from leakhub.core.db import database

    try:
        org = Organization.get(Organization.slug == slug)

        def pulled():
            return list(SecurityEvent.select().where(
                (SecurityEvent.organization == org) & (SecurityEvent.source == "keycloak"))
                .order_by(SecurityEvent.at, SecurityEvent.id))

        events = pulled()
        failed = [e for e in events if e.kind == "sign_in_failed"]
        assert len(failed) >= 3, [(e.kind, e.details) for e in events]
        assert all(e.username.lower() == email for e in failed)
        assert all(e.user_id is not None for e in failed)  # mapped to the Leakhub user
        assert any(e.kind == "lockout" for e in events), [(e.kind, e.details) for e in events]
        assert "wrong-password" not in " ".join(e.details for e in events)
        ids = sorted(e.external_id for e in events)
        assert len(ids) == len(set(ids))

        stack.leakctl("security", "sync")
        assert sorted(e.external_id for e in pulled()) == ids

        out = json.loads(stack.leakctl("security", "review", "--json").stdout)
        assert out["status"] == "ok", out
        lockouts = list(Finding.select().where((Finding.organization == org)
                                               & (Finding.rule == "lockout")))
        assert len(lockouts) == 1 and lockouts[0].severity == "medium"
        assert lockouts[0].details_dict["label"].lower() == email
        stack.leakctl("security", "review")
        assert Finding.select().where((Finding.organization == org)
                                      & (Finding.rule == "lockout")).count() == 1
    finally:
        database.close()
