"""`leakctl org create|list` against the real Keycloak and PostgreSQL."""
import json
import time

from support.kc import new_org


def test_org_create_makes_a_realm_and_lists_it(stack):
    slug, email, otp = new_org(stack)
    assert len(otp) >= 8
    listed = json.loads(stack.leakctl("org", "list", "--json").stdout)
    assert slug in [o["slug"] for o in listed]
    # The realm's OIDC metadata carries the public issuer even though we ask internally.
    meta = stack.requests_session().get(
        f"{stack.keycloak_url}/realms/{slug}/.well-known/openid-configuration").json()
    assert meta["issuer"] == f"{stack.public_url}/auth/realms/{slug}"


def test_taken_slug_fails_with_one_clear_line(stack):
    slug, _, _ = new_org(stack)
    out = stack.leakctl("org", "create", "--slug", slug, "--name", "Again",
                        "--admin-email", "x@example.com", check=False)
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert "already exists" in lines[0] or "taken" in lines[0]
    assert "Traceback" not in out.stderr


def test_invalid_slug_and_email_are_named(stack):
    out = stack.leakctl("org", "create", "--slug", "Bad Slug", "--name", "X",
                        "--admin-email", "x@example.com", check=False)
    assert out.returncode != 0 and "slug" in out.stderr
    out = stack.leakctl("org", "create", "--slug", "okslug", "--name", "X",
                        "--admin-email", "not-an-address", check=False)
    assert out.returncode != 0 and "e-mail" in out.stderr


def test_unreachable_keycloak_fails_quickly_with_one_clear_line(stack):
    started = time.monotonic()
    out = stack.leakctl("org", "create", "--slug", "unreach", "--name", "X",
                        "--admin-email", "x@example.com", check=False,
                        env={"KEYCLOAK_URL": "http://127.0.0.1:9/auth"})
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert "not reachable" in lines[0]
    assert time.monotonic() - started < 60
    listed = json.loads(stack.leakctl("org", "list", "--json").stdout)
    assert "unreach" not in [o["slug"] for o in listed]
