"""Repair follow-up (issue 18 item 7).

- `leak.assignee_id`: the user who should repair the leak (NULL: nobody), `leak.due_on`: the
  date the repair is due, `leak.order_number`: the maintenance order number ("" when none).
- `leak.after_lpm`: the leak rate measured when the repair was verified (NULL: not
  re-measured); savings then come from the measured values (before − after).
- `follow_up_mail`: one row per (user, day) the daily follow-up mail was sent, so the job is
  idempotent per day.
"""
import peewee as pw


def up(db):
    pass
