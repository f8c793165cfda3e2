"""The daily follow-up e-mail (worker job `follow-up-mail`).

Each enabled user with an e-mail address who is the assignee of leaks that are overdue or due
within leaks.service.DUE_SOON_DAYS days gets one e-mail a day in their own language (their
choice, else the organization's), listing only the leaks they can still see (their role and
grants now, through authz.scope, as on the web). Nothing is sent when nothing is due.
Idempotent per day: a row in follow_up_mail per (user, local date) is written when the mail
went out; a failed delivery writes none, so the next run tries again. Mails go out from
SEND_HOUR local time on (the job runs every hour; a missed hour is caught up).
"""
from __future__ import annotations

import datetime as dt
import smtplib
from dataclasses import dataclass

import peewee as pw
from flask_babel import gettext as _

from .. import authz
from ..core.config import get_config
from ..core.db import database, utcnow
from ..core.errors import Unavailable
from ..core.i18n import recipient_locale, speaking
from ..core.secrets import read_secret
from ..core.validation import utc_to_local
from ..identity.models import User
from ..leaks import service as leaks
from ..leaks.models import Leak
from ..locations.models import Location
from ..orgs.models import Organization
from ..security import settings as security_settings
from ..security.review import send_mail
from .models import FollowUpMail

SEND_HOUR = 6  # local time of the organization: the mail is there when the shift starts


@dataclass
class Mail:
    user: User
    locale: str
    subject: str
    body: str
    leaks: int


def _fmt_day(day: dt.date, locale: str) -> str:
    return day.strftime("%d.%m.%Y" if locale == "de" else "%Y-%m-%d")


def _user_actor(user: User, org: Organization) -> authz.Actor:
    user.organization = org
    return authz.Actor(organization=org, kind="user", user=user, label="follow-up mail")


def leaks_for(user: User, org: Organization, today: dt.date) -> tuple[list, list]:
    """(overdue, due) leaks of which `user` is the assignee and which they can see now."""
    actor = _user_actor(user, org)
    mine = authz.scope(actor, Leak, "view").where(Leak.assignee == user.id)
    overdue = list(mine.where(leaks.overdue_condition(today))
                   .order_by(Leak.due_date, Leak.tag_number, Leak.tag))
    due = list(mine.where(leaks.due_condition(today))
               .order_by(Leak.due_date, Leak.tag_number, Leak.tag))
    return overdue, due


def mail_for(user: User, org: Organization, today: dt.date, config) -> Mail | None:
    """The user's mail of the day, or None when nothing of theirs is due or overdue."""
    overdue, due = leaks_for(user, org, today)
    if not overdue and not due:
        return None
    locale = recipient_locale(user)
    actor = _user_actor(user, org)
    loc_ids = {lk.location_id for lk in overdue + due}
    labels = {loc.id: loc.label for loc in authz.scope(actor, Location, "view")
              .where(Location.id.in_(sorted(loc_ids)))}
    base = config.public_url.rstrip("/")
    with speaking(locale):
        subject = _("[Leakhub] Your repairs: %(overdue)d overdue, %(due)d due",
                    overdue=len(overdue), due=len(due))
        lines = [_("Hello %(name)s,", name=user.display_name), "",
                 _("these leaks of %(org)s are assigned to you for repair.", org=org.name)]

        def block(title, rows):
            lines.extend(["", title])
            for lk in rows:
                parts = [_("Leak %(tag)s", tag=lk.tag),
                         _("due %(day)s", day=_fmt_day(lk.due_date, locale)),
                         str(leaks.STATUS_LABELS[lk.status])]
                if lk.location_id in labels:
                    parts.append(labels[lk.location_id])
                if lk.order_number:
                    parts.append(_("order %(no)s", no=lk.order_number))
                lines.append("- " + " · ".join(parts))
                lines.append(f"  {base}/leaks/{lk.id}")

        if overdue:
            block(_("Overdue (%(n)d):", n=len(overdue)), overdue)
        if due:
            block(_("Due within %(days)d days (%(n)d):", days=leaks.DUE_SOON_DAYS, n=len(due)),
                  due)
        lines += ["", _("All your repairs: %(url)s", url=f"{base}/leaks?assignee={user.id}"
                                                          "&sort=due"),
                  "", _("You receive this e-mail because leaks are assigned to you in "
                        "Leakhub; it comes once a day while repairs are due.")]
    return Mail(user, locale, subject, "\n".join(lines) + "\n", len(overdue) + len(due))


def send_follow_up_mails(*, now: dt.datetime | None = None, config=None, env=None) -> str:
    """Job: the day's follow-up mail to every assignee with due or overdue leaks."""
    config = config or get_config()
    now = now or utcnow()
    smtp = security_settings.smtp(env, config)
    if smtp is None:
        return "follow-up mail: e-mail not configured (LEAKHUB_SMTP_HOST is empty), skipped"
    password = read_secret(config.secrets_dir, "smtp-password") if smtp.user else None
    sent, problems = 0, []
    for org in Organization.select().order_by(Organization.id):
        local = utc_to_local(now, org.timezone)
        if local.hour < SEND_HOUR:
            continue
        today = local.date()
        done = {uid for (uid,) in FollowUpMail.select(FollowUpMail.user).where(
            (FollowUpMail.organization == org.id) & (FollowUpMail.day == today)).tuples()}
        assignees = (User.select().where(
            (User.organization == org.id) & (User.enabled == True)  # noqa: E712
            & User.role.is_null(False) & (User.email != "")
            & User.id.in_(Leak.select(Leak.assignee).where(
                (Leak.organization == org.id) & Leak.assignee.is_null(False)
                & Leak.status.in_(leaks.FOLLOW_UP_STATUSES)
                & (Leak.due_date <= today + dt.timedelta(days=leaks.DUE_SOON_DAYS)))))
            .order_by(User.id))
        for user in assignees:
            if user.id in done:
                continue
            mail = mail_for(user, org, today, config)
            if mail is None:
                continue
            try:
                send_mail(smtp, password, [user.email], mail.subject, mail.body)
            except (OSError, smtplib.SMTPException) as exc:
                problems.append(f"{org.slug}: mail to user {user.id} not sent "
                                f"({type(exc).__name__}: {exc})"[:300])
                continue
            try:
                with database.atomic():
                    FollowUpMail.create(organization=org.id, user=user.id, day=today,
                                        sent_at=now, leaks=mail.leaks)
            except pw.IntegrityError:
                pass  # another worker sent it at the same moment (one worker holds the lock)
            sent += 1
    message = f"follow-up mail: {sent} e-mail(s) sent"
    if problems:
        raise FollowUpMailError(message + "; problems: " + "; ".join(problems))
    return message


class FollowUpMailError(Unavailable):
    """Some follow-up mails could not be delivered (they are retried on the next run)."""
