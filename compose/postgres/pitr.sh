#!/bin/bash
# Point-in-time recovery inside the appliance's postgres container (docs/backups.md,
# "Docker Compose"). Runs as the postgres user (uid 999); pgBackRest's settings are in
# /etc/pgbackrest/pgbackrest.conf, the repository is the `pgbackrest` volume.
#
#   pitr.sh loop            started in the background by compose/postgres-entrypoint.sh: waits
#                           for the server, creates the stanza, takes a base backup at the first
#                           start (and whenever the newest is older than 26 h) and daily at
#                           LEAKHUB_PITR_TIME (UTC), publishes `pgbackrest info` every minute
#   pitr.sh base            a full base backup now (scripts/leakctl backup pitr-base)
#   pitr.sh publish         write the repository's info for web/worker (the `pitr_info` volume)
#   pitr.sh switch-wal      close the current WAL segment and wait until it is archived
#   pitr.sh restore TARGET  (server stopped; one-shot container) pgbackrest restore to TARGET
#                           ("YYYY-MM-DD HH:MM:SS+00"), promoting at the target on next start
#   pitr.sh wait-promoted   wait until the restarted server has replayed and is writable
set -uo pipefail

STANZA=leakhub
INFO_DIR=/var/lib/leakhub-pitr
PITR_TIME="${LEAKHUB_PITR_TIME:-01:30}"
MAX_AGE=$((26 * 3600))

say() { printf 'pitr: %s\n' "$*" >&2; }
pgbr() { pgbackrest --stanza="$STANZA" "$@"; }
sql() { psql -h /var/run/postgresql -p 5432 -U postgres -d postgres -XAtq -c "$1"; }

# The newest base backup's end (epoch seconds), 0 without one.
newest_base() {
  local out
  out="$(pgbr --output=json info 2>/dev/null)" || { echo 0; return; }
  printf '%s' "$out" | grep -o '"timestamp":{"start":[0-9]*,"stop":[0-9]*}' \
    | sed 's/.*"stop":\([0-9]*\)}/\1/' | sort -n | tail -n 1 | grep . || echo 0
}

publish() {
  local out retention
  out="$(pgbr --output=json info 2>/dev/null)" || out="[]"
  retention="${PGBACKREST_REPO1_RETENTION_FULL:-7}"
  [[ "$retention" =~ ^[0-9]+$ ]] || retention=7
  printf '{"published_at": %s, "retention_days": %s, "info": %s}\n' \
    "$(date -u +%s)" "$retention" "$out" > "$INFO_DIR/info.json.tmp" \
    && chmod 0644 "$INFO_DIR/info.json.tmp" && mv -f "$INFO_DIR/info.json.tmp" "$INFO_DIR/info.json"
}

base() {
  local started=$SECONDS
  say "full base backup"
  pgbr --type=full backup || { say "error: base backup failed"; return 1; }
  say "base backup done in $((SECONDS - started)) s"
  publish
}

loop() {
  local waited=0 stanza=0 next_try=0 now newest sched
  until pg_isready -q -h 127.0.0.1 -p 5432 -U postgres -d postgres; do
    sleep 2
    waited=$((waited + 2))
    (( waited % 120 == 0 )) && say "waiting for the server"
  done
  while true; do
    if (( stanza == 0 )); then
      if pgbr stanza-create >/dev/null; then
        stanza=1
      else
        say "error: pgbackrest stanza-create failed (repository of another cluster?)"
      fi
    fi
    now="$(date -u +%s)"
    if (( stanza == 1 && now >= next_try )); then
      newest="$(newest_base)"
      sched="$(date -u -d "$(date -u +%F) $PITR_TIME" +%s 2>/dev/null || echo 0)"
      if (( newest == 0 || now - newest > MAX_AGE || (sched > 0 && now >= sched && newest < sched) )); then
        base || next_try=$((now + 900))
      fi
    fi
    publish
    sleep 60
  done
}

switch_wal() {
  local name last deadline=$((SECONDS + 120))
  name="$(sql "SELECT pg_walfile_name(pg_switch_wal())")" || { say "error: psql failed"; return 1; }
  while true; do
    last="$(sql "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")"
    if [[ -n "$last" && ! "$last" < "$name" ]]; then
      echo "$name"
      return 0
    fi
    if (( SECONDS > deadline )); then
      say "error: WAL segment $name was not archived within 120 s (see docker compose logs postgres)"
      return 1
    fi
    sleep 0.5
  done
}

wait_promoted() {
  local deadline=$((SECONDS + ${1:-600}))
  until [[ "$(sql "SELECT pg_is_in_recovery()" 2>/dev/null)" == f ]]; do
    if (( SECONDS > deadline )); then
      say "error: the server did not finish the recovery in time (docker compose logs postgres)"
      return 1
    fi
    sleep 1
  done
}

case "${1:-}" in
  loop) loop ;;
  base) base ;;
  publish) publish ;;
  switch-wal) switch_wal ;;
  restore)
    [ -n "${2:-}" ] || { say "usage: pitr.sh restore 'YYYY-MM-DD HH:MM:SS+00'"; exit 2; }
    pgbr --log-level-console=info restore --delta --type=time --target="$2" \
      --target-action=promote ;;
  wait-promoted) wait_promoted "${2:-600}" ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
