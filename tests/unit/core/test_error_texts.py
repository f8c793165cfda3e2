"""Error descriptions are read in the user's language (issue 14): CSRF refusals (core/web.py)
and the 400s of the audit and leak exports."""
import pytest

from support.session import sign_in


@pytest.fixture
def german(org, make_user):
    user = make_user("admin")
    user.language = "de"
    user.save()
    return user


def test_csrf_refusals_in_german(client, german):
    sign_in(client, german)
    resp = client.post("/account/language", data={"csrf_token": "wrong", "language": "en"})
    assert resp.status_code == 403
    page = resp.get_data(as_text=True)
    assert "Das Formular ist abgelaufen" in page and "Laden Sie die Seite neu" in page
    resp = client.post("/account/language", data={"csrf_token": "t", "language": "en"},
                       headers={"Origin": "https://evil.example"})
    assert resp.status_code == 403
    assert "anderen Website" in resp.get_data(as_text=True)


def test_csrf_refusal_in_english(client, org, make_user):
    sign_in(client, make_user("admin"))
    resp = client.post("/account/language", data={"csrf_token": "wrong", "language": "de"})
    assert resp.status_code == 403 and "The form has expired" in resp.get_data(as_text=True)


def test_export_errors_in_german(client, german):
    sign_in(client, german)
    resp = client.get("/audit.csv?from=nonsense")
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "Der Export wurde nicht erstellt: Von:" in page
    resp = client.get("/leaks/export.csv?status=nonsense")
    assert resp.status_code == 400
    assert "Der Export wurde nicht erstellt: status:" in resp.get_data(as_text=True)


def test_export_errors_in_english(client, org, make_user):
    sign_in(client, make_user("admin"))
    page = client.get("/audit.csv?to=nonsense").get_data(as_text=True)
    assert "The export was not made: To:" in page
