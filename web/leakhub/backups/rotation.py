"""Which backups rotation keeps: grandfather-father-son by count, never the newest good one.

Rules, applied to the backups that did not fail verification:
- keep_daily: the newest backup of each of the last N calendar days (UTC) that have backups;
- keep_weekly: the newest of each of the last N ISO weeks that have backups;
- keep_monthly: the newest of each of the last N calendar months that have backups.
Counted over days/weeks/months *with backups* (as borg and restic do), not over the calendar
back from today, so a worker that was down for two weeks does not make rotation delete more.
Always kept as well: the newest verified backup (DESIGN §7: rotation never deletes the newest
good backup) and the newest backup of all (its verification may still be pending).
Backups whose verification failed fill no slot, so rotation removes them — unless one of the
two "always" rules holds it.

`plan` decides; `rotate` applies it to the backup directory and the copy dir.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..core.files import fsync_dir
from .inventory import reconcile, records
from .lock import backup_lock
from .service import audit, say, target_dirs
from .settings import get_settings


@dataclass(frozen=True)
class Item:
    name: str
    created_at: dt.datetime
    verify_status: str | None = None   # ok | failed | None


def _bucket_keep(items: list[Item], count: int, key) -> set[str]:
    keep, seen = set(), []
    for item in items:                   # newest first
        k = key(item.created_at)
        if k in seen:
            continue
        if len(seen) >= count:
            break
        seen.append(k)
        keep.add(item.name)
    return keep


def plan(items: list[Item], *, keep_daily: int, keep_weekly: int,
         keep_monthly: int) -> tuple[list[Item], list[Item]]:
    """(keep, delete), each newest first."""
    ordered = sorted(items, key=lambda i: (i.created_at, i.name), reverse=True)
    usable = [i for i in ordered if i.verify_status != "failed"]
    keep: set[str] = set()
    keep |= _bucket_keep(usable, keep_daily, lambda t: t.date())
    keep |= _bucket_keep(usable, keep_weekly, lambda t: tuple(t.isocalendar())[:2])
    keep |= _bucket_keep(usable, keep_monthly, lambda t: (t.year, t.month))
    verified = [i for i in ordered if i.verify_status == "ok"]
    if verified:
        keep.add(verified[0].name)
    if ordered:
        keep.add(ordered[0].name)
    return ([i for i in ordered if i.name in keep], [i for i in ordered if i.name not in keep])


def rotate(config, *, dry_run: bool = False, keep_daily=None, keep_weekly=None,
           keep_monthly=None, log_fn=None) -> tuple[list, list]:
    """Delete what the keep-daily/weekly/monthly rules do not keep (backup dir and copy dir)."""
    settings = get_settings(config)
    with backup_lock(config, what="rotation"):
        reconcile(config)
        rows = records()
        items = [Item(r.file_name, r.created_at, r.verify_status) for r in rows]
        keep, delete = plan(
            items,
            keep_daily=settings.keep_daily if keep_daily is None else keep_daily,
            keep_weekly=settings.keep_weekly if keep_weekly is None else keep_weekly,
            keep_monthly=settings.keep_monthly if keep_monthly is None else keep_monthly)
        if dry_run or not delete:
            return keep, delete
        for item in delete:
            for d in target_dirs(config):
                (d / item.name).unlink(missing_ok=True)
            say(log_fn, f"deleted {item.name}")
        for d in target_dirs(config):
            if d.is_dir():
                fsync_dir(d)
        reconcile(config)
        audit(config, "backup.deleted", {"files": [i.name for i in delete],
                                         "reason": "rotation"}, label="rotation")
    return keep, delete
