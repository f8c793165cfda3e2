"""Data protection on the real stack (issue 15): permanent lock-out and unlock through the real
Keycloak login page; erasure and export through leakctl as a subprocess; the audit chain still
verifies afterwards."""
import datetime as dt
import json
import time
import uuid
from pathlib import Path

from leakhub.audit import writer
from leakhub.audit.verify import verify_org
from leakhub.core import migrations
from leakhub.core.db import database
from leakhub.core.secrets import read_secret
from leakhub.identity.keycloak_admin import KeycloakAdmin
from leakhub.orgs.models import Organization

from support.forms import Browser, id_from, make_world
from support.kc import new_org, sign_in, start_login, submit_password
from support.stackctl import scratch_database, sql

SERVICE_CLIENT_ID = "leakhub-service"


def kc_admin(stack) -> KeycloakAdmin:
    # read_secret: the secret file may be encrypted at rest (issue 15 part 5).
    secret = read_secret(Path(stack.home) / "secrets", "keycloak-service-client-secret")
    return KeycloakAdmin(stack.keycloak_url, SERVICE_CLIENT_ID, secret)


def signed_in(http, stack) -> bool:
    return http.get(f"{stack.public_url}/", allow_redirects=False).status_code == 200


def try_password(stack, slug, email, password) -> bool:
    http = stack.requests_session()
    page = submit_password(http, start_login(http, stack, slug), email, password)
    return "/auth/realms/" not in page.url and signed_in(http, stack)


def fail_three_times(stack, slug, email):
    http = stack.requests_session()
    page = start_login(http, stack, slug)
    for _ in range(3):
        page = submit_password(http, page, email, "wrong-password-1")
        assert "/auth/realms/" in page.url


def test_permanent_lockout_holds_after_the_wait_until_an_admin_unlocks(stack):
    slug, email, otp = new_org(stack, "lk")
    _resp, password = sign_in(stack.requests_session(), stack, slug, email, otp)
    kc = kc_admin(stack)
    # The temporary wait shortened to ~1 s, so "after the wait" is quick to test.
    kc._request("PUT", kc._realm_path(slug), json_body={
        "waitIncrementSeconds": 1, "minimumQuickLoginWaitSeconds": 1,
        "maxFailureWaitSeconds": 2, "quickLoginCheckMilliSeconds": 1})

    # temporary (the default): locked at once, free again after the wait
    fail_three_times(stack, slug, email)
    assert not try_password(stack, slug, email, password)
    time.sleep(3)
    assert try_password(stack, slug, email, password)

    out = stack.leakctl("privacy", "settings", "--org", slug, "--lockout", "permanent", "--json")
    assert json.loads(out.stdout)["lockout"] == "permanent"
    assert kc.get_realm(slug)["permanentLockout"] is True

    fail_three_times(stack, slug, email)
    assert not try_password(stack, slug, email, password)
    time.sleep(3)  # longer than the temporary wait: still locked
    assert not try_password(stack, slug, email, password)

    out = stack.leakctl("user", "unlock", "--org", slug, "--email", email)
    assert "unlocked" in out.stdout
    assert try_password(stack, slug, email, password)

    # from the user page: the administrator unlocks a colleague
    admin_http = stack.requests_session()
    assert sign_in(admin_http, stack, slug, email, password)[0].status_code == 200
    colleague = f"kim@{slug}.example.com"
    invited = json.loads(stack.leakctl("user", "invite", "--org", slug, "--email", colleague,
                                       "--role", "viewer", "--json").stdout)
    _resp, kim_password = sign_in(stack.requests_session(), stack, slug, colleague,
                                  invited["one_time_password"])
    fail_three_times(stack, slug, colleague)
    time.sleep(3)
    assert not try_password(stack, slug, colleague, kim_password)
    admin = Browser(stack, admin_http)
    page = admin.get(f"/users/{invited['user_id']}")
    unlock = admin.form(page, f"/users/{invited['user_id']}/unlock")
    assert admin.submit(unlock).status_code == 302
    assert try_password(stack, slug, colleague, kim_password)

    rows = sql(stack, "SELECT a.action FROM audit_entry a JOIN organization o"
                      " ON o.id = a.organization_id WHERE o.slug = %s AND a.action IN"
                      " ('user.unlocked', 'settings.changed') ORDER BY a.seq", slug)
    assert [r[0] for r in rows] == ["settings.changed", "user.unlocked", "user.unlocked"]
    stack.leakctl("audit", "verify", "--org", slug)


def _dump(stack) -> str:
    tables = [r[0] for r in sql(stack, "SELECT table_name FROM information_schema.tables"
                                       " WHERE table_schema = 'public'"
                                       " AND table_type = 'BASE TABLE'")]
    return "\n".join(str(r[0]) for t in tables
                     for r in sql(stack, f'SELECT t::text FROM "{t}" t')).lower()


def test_export_and_erase_through_leakctl_and_keycloak(stack):
    slug, admin_email, otp = new_org(stack, "er")
    admin_http = stack.requests_session()
    sign_in(admin_http, stack, slug, admin_email, otp)
    world = make_world(Browser(stack, admin_http))
    email, name = f"erika.muster@{slug}.example.com", "Erika Muster"
    invited = json.loads(stack.leakctl("user", "invite", "--org", slug, "--email", email,
                                       "--role", "editor", "--name", name, "--json").stdout)
    erika_http = stack.requests_session()
    sign_in(erika_http, stack, slug, email, invited["one_time_password"])
    erika = Browser(stack, erika_http)
    form = erika.form("/leaks/new")
    form.set("tag", "E-1").set("location", world["area"]).set("found_at", "2024-03-05T10:15")
    form.set("rate_lpm", "12,5").set("found_by", name).set("description", "Ventil zischt")
    leak_id = id_from(erika.submit(form), "/leaks")
    own = erika_http.get(f"{stack.public_url}/account/export.json")
    assert own.status_code == 200 and own.json()["user"]["email"] == email

    exported = json.loads(stack.leakctl("user", "export", "--org", slug, "--email",
                                        email).stdout)
    assert exported["user"]["name"] == name
    assert [lk["tag"] for lk in exported["leaks_found"]] == ["E-1"]
    assert exported["audit_entries_by_user"]

    # another organization's administrator gets 404 for Erika, never her data
    other_slug, other_email, other_otp = new_org(stack, "ot")
    other_http = stack.requests_session()
    sign_in(other_http, stack, other_slug, other_email, other_otp)
    user_id = invited["user_id"]
    assert other_http.get(f"{stack.public_url}/users/{user_id}/export.json").status_code == 404
    refused = stack.leakctl("user", "erase", "--org", other_slug, "--email", email, "--yes",
                            check=False)
    assert refused.returncode != 0

    out = stack.leakctl("user", "erase", "--org", slug, "--email", email, "--yes", "--json")
    assert json.loads(out.stdout)["pseudonym"] == f"former user #{user_id}"
    assert kc_admin(stack).find_user_by_email(slug, email) is None
    assert not signed_in(erika_http, stack)  # her sessions ended
    (found_by, found_user), = sql(stack, "SELECT found_by, found_by_user_id FROM leak"
                                         " WHERE id = %s", leak_id)
    assert (found_by, found_user) == (f"former user #{user_id}", user_id)
    dump = _dump(stack)
    assert email not in dump and name.lower() not in dump
    by_her = sql(stack, "SELECT DISTINCT actor_label FROM audit_entry WHERE actor_kind = 'user'"
                        " AND actor_id = %s", user_id)
    assert by_her == [(f"former user #{user_id}",)]
    verify = json.loads(stack.leakctl("audit", "verify", "--org", slug, "--json").stdout)
    assert verify[0]["ok"] is True, verify
    # The masking command for env-copy runs on the same stack and keeps the chain intact.
    masked = json.loads(stack.leakctl("privacy", "mask", "--org", slug, "--yes",
                                      "--json").stdout)
    assert masked[slug]["keycloak_users"] >= 1
    assert admin_email not in _dump(stack)
    assert kc_admin(stack).find_user_by_email(slug, admin_email) is None
    stack.leakctl("audit", "verify", "--org", slug)


def _v1_chain_sql(org_id, *, label):
    """Three entries as Leakhub wrote them before migration 0013 (hash version 1)."""
    prev = writer.GENESIS
    for seq in (1, 2, 3):
        row = {"organization": org_id, "seq": seq,
               "at": dt.datetime(2025, 1, seq, 8, 0, 0, 123456), "actor_kind": "user",
               "actor_id": 1, "actor_label": label, "ip": "10.1.1.1", "request_id": "r",
               "action": "update", "entity_type": "leak", "entity_id": 7,
               "changes": json.dumps({"found_by": [None, "Old Finder"], "rate_lpm": ["1", "2"]}),
               "prev_hash": prev}
        row["hash"] = prev = writer.entry_digest(writer.hashed_fields(row))
        database.execute_sql(
            "INSERT INTO audit_entry (organization_id, seq, at, actor_kind, actor_id,"
            " actor_label, ip, request_id, action, entity_type, entity_id, changes, prev_hash,"
            " hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [row[k] for k in ("organization", "seq", "at", "actor_kind", "actor_id",
                              "actor_label", "ip", "request_id", "action", "entity_type",
                              "entity_id", "changes", "prev_hash", "hash")])
    database.execute_sql("INSERT INTO audit_chain_head (organization_id, seq, hash, anchor_seq,"
                         " anchor_hash) VALUES (%s, 3, %s, 0, %s)",
                         (org_id, prev, writer.GENESIS))


def test_migration_0013_rehashes_intact_chains_on_postgresql(stack, tmp_path):
    """An audit chain written before issue 15 verifies after migrating to head, and erasing
    its personal details keeps it verified; a chain tampered with before stays broken."""
    with scratch_database(stack, f"privacy_rehash_{uuid.uuid4().hex[:8]}"):
        migrations.migrate(tmp_path, target=12, log=lambda m: None)
        ids = []
        for slug in ("intact", "tampered"):
            ids.append(database.execute_sql(
                "INSERT INTO organization (slug, name, timezone, language, security_mode,"
                " oidc_client_secret, created_at) VALUES (%s, %s, 'UTC', 'en', 1, 'x', now())"
                " RETURNING id", (slug, slug)).fetchone()[0])
            _v1_chain_sql(ids[-1], label=f"old@{slug}.test")
        database.execute_sql("UPDATE audit_entry SET entity_id = 8 WHERE organization_id = %s"
                             " AND seq = 2", (ids[1],))
        migrations.migrate(tmp_path, log=lambda m: None)
        intact, tampered = (Organization.get_by_id(i) for i in ids)
        assert verify_org(intact).ok, verify_org(intact).problem
        assert not verify_org(tampered).ok
        versions = database.execute_sql("SELECT organization_id, hash_version FROM audit_entry"
                                        " ORDER BY organization_id, seq").fetchall()
        assert versions == [(ids[0], 2)] * 3 + [(ids[1], 1)] * 3
        assert intact.profiling_rules is True  # existing organizations keep the rules
        database.execute_sql("UPDATE audit_entry SET actor_label = 'former user #1', ip = NULL,"
                             " changes = %s WHERE organization_id = %s",
                             (json.dumps({"found_by": [None, "former user #1"],
                                          "rate_lpm": ["1", "2"]}), ids[0]))
        assert verify_org(intact).ok
        database.close()
