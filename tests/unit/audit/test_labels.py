"""The audit log shows actions and record types through audit/activity.py's label tables
(issue 14), in the user's language; the filters still send the stored names."""
import re
from pathlib import Path

import leakhub
from leakhub.audit import writer
from leakhub.audit.activity import ACTION_LABELS, ENTITY_LABELS, action_label, entity_label

from support.session import sign_in

WEB = Path(leakhub.__file__).parent
# writer.event(actor, "x"…), audit(config, "x"…), action="x" [if … else "y"]
ACTION = re.compile(r'(?:\bevent\([\w.]+(?:\([^)\n]*\))?, |\baudit\(config, |\baction=)"([a-z_.]+)"'
                    r'(?: if \w+ else "([a-z_.]+)")?')


def _actions_in_code() -> set[str]:
    found = set()
    for path in WEB.rglob("*.py"):
        for m in ACTION.finditer(path.read_text(encoding="utf-8")):
            found.update(a for a in m.groups() if a)
    return found


def _audited_types() -> set[str]:
    types = set()
    for path in WEB.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        types.update(re.findall(r'AUDIT_TYPE = "([a-z_]+)"', text))
    return types


def test_every_action_in_the_code_has_a_label():
    actions = _actions_in_code()
    assert {"status_change", "user.role_changed", "user.disabled", "backup.created",
            "device.disabled", "retention.run", "finding.acknowledged"} <= actions
    assert actions - set(ACTION_LABELS) == set()
    assert {"create", "update", "delete"} <= set(ACTION_LABELS)


def test_every_audited_record_type_has_a_label():
    types = _audited_types() | {"user", "organization"}
    assert "security_finding" in types
    assert types - set(ENTITY_LABELS) == set()
    assert action_label("something.new") == "something.new"
    assert entity_label("something_new") == "something_new"


def _audit_page(client, make_user, make_actor, language):
    admin = make_user("admin")
    admin.language = language
    admin.save()
    target = make_user("viewer")
    writer.update(make_actor("admin"), target, {"role": "manager"}, permission="manage",
                  action="user.role_changed")
    writer.update(make_actor("admin"), target, {"enabled": False}, permission="manage")
    sign_in(client, admin)
    return client.get("/audit").get_data(as_text=True)


def test_audit_log_in_german(client, org, make_user, make_actor):
    page = _audit_page(client, make_user, make_actor, "de")
    assert "<td>Rolle geändert</td>" in page
    assert "Benutzer " in page and ">Rolle</span>" in page      # record type, field label
    assert '<option value="user.role_changed"' in page and ">Rolle geändert</option>" in page
    assert '<option value="user"' in page and ">Benutzer</option>" in page
    assert ">user.role_changed<" not in page
    assert ">Aktiviert</span>: <del>ja</del> → <ins>nein</ins>" in page   # values read German


def test_audit_log_in_english(client, org, make_user, make_actor):
    page = _audit_page(client, make_user, make_actor, "en")
    assert "<td>Role changed</td>" in page and ">User</option>" in page
    assert ">user.role_changed<" not in page

