"""The security digest e-mail in its recipients' language (issue 14): each administrator
gets it in their own language (else the organization's) — one mail per language, German
subject, body, severities, rule titles and dates dd.mm.yyyy for German readers."""
import datetime as dt
import re

from flask import has_app_context

from leakhub.core.db import utcnow
from leakhub.security import review
from leakhub.security.models import SecurityEvent
from leakhub.security.review import review_security_events

SMTP = {"LEAKHUB_WORK_HOURS": "off", "LEAKHUB_SMTP_HOST": "mail.acme.test",
        "LEAKHUB_SMTP_FROM": "leakhub@acme.test"}


class FakeSMTP:
    sent: list = []

    def __init__(self, host, port, timeout=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def ehlo(self):
        pass

    def starttls(self, context=None):
        pass

    def send_message(self, msg):
        FakeSMTP.sent.append(msg)


def _lockout(org, user):
    SecurityEvent.create(organization=org, kind="lockout", at=utcnow() - dt.timedelta(minutes=1),
                         user=user, username=user.email, ip="198.51.100.7", source="keycloak")


def test_each_administrator_reads_the_digest_in_their_language(config, org, make_user,
                                                               monkeypatch):
    FakeSMTP.sent = []
    monkeypatch.setattr(review.smtplib, "SMTP", FakeSMTP)
    german, english, default = make_user("admin"), make_user("admin"), make_user("admin")
    german.language, english.language = "de", "en"
    german.save()
    english.save()
    org.language = "de"          # the third administrator chose nothing: the organization's
    org.save()
    _lockout(org, make_user("editor"))
    # counted per organization; sent as one mail per language
    assert "1 e-mail(s) sent" in review_security_events(config=config, env=SMTP)
    by_to = {msg["To"]: msg for msg in FakeSMTP.sent}
    assert set(by_to) == {f"{german.email}, {default.email}", english.email}
    de = by_to[f"{german.email}, {default.email}"]
    en = by_to[english.email]
    assert de["Subject"] == "[Leakhub] Sicherheitsbefunde für ACME GmbH"
    body = de.get_content()
    assert "Sicherheitsprüfung von ACME GmbH: 1 Befund(e)" in body
    assert "[MITTEL] Konto nach fehlgeschlagenen Anmeldungen gesperrt" in body
    assert re.search(r"\d\d\.\d\d\.\d{4} \d\d:\d\d", body) and "https://leakhub.test/security" \
        in body
    assert "Account locked" not in body and "finding(s)" not in body
    assert en["Subject"] == "[Leakhub] Security findings for ACME GmbH"
    english_body = en.get_content()
    assert "[MEDIUM] Account locked after failed sign-ins" in english_body
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", english_body)


def test_digest_text_without_an_application(org):
    """The worker has no Flask app: the digest still speaks German."""
    assert not has_app_context()
    subject, body = review.digest_for(org, [], type("C", (), {"public_url": "https://x"})(), "de")
    assert subject.startswith("[Leakhub] Sicherheitsbefunde") and "0 Befund(e)" in body
