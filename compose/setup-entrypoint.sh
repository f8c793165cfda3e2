#!/bin/sh
# Entrypoint of the one-shot `setup` service (docker-compose.yml); also used by
# `docker compose run --rm setup leakctl ...`.
#
# It starts as root for two steps only, then runs its command as the app user:
#   1. Volume ownership. Docker creates named volumes owned by root unless the first container
#      to mount them seeds them, and PostgreSQL or Keycloak may start first: make the app's
#      volumes belong to the app user, and each per-server secrets volume to its server.
#   2. Per-server secret copies. `leakctl setup` (as the app user) generates every missing
#      secret into $LEAKHUB_SECRETS_DIR, mode 0600, owned by the app user. PostgreSQL (uid 999)
#      and Keycloak (uid 1000) cannot and should not read that directory, so a background loop
#      copies to each just the secrets it needs, owned by its uid, mode 0600, as soon as
#      they exist. Postgres and Keycloak wait for those copies; `leakctl setup` waits for them.
#      The web container gets its copies the same way (owned by the app user): never the
#      PostgreSQL superuser password nor the backup identity (backups are the worker's job).
# The command itself runs as uid/gid 10001 through setpriv (util-linux), with no capabilities
# (a uid change from root clears them; no-new-privileges keeps it so).
set -eu

APP_UID=10001
SECRETS="${LEAKHUB_SECRETS_DIR:-/run/leakhub-secrets}"
PG_DIR=/run/service-secrets/postgres      # postgres_secrets volume
PG_UID=999                                # `postgres` in the postgres image
KC_DIR=/run/service-secrets/keycloak      # keycloak_secrets volume
KC_UID=1000                               # `keycloak` in the Keycloak image (group root)
KC_GID=0
WEB_DIR=/run/service-secrets/web          # web_secrets volume (the web's /run/leakhub-secrets)
COPY_TIMEOUT="${LEAKHUB_SECRET_COPY_TIMEOUT:-900}"

say() { printf 'setup-entrypoint: %s\n' "$*" >&2; }

if [ "$#" -eq 0 ]; then
  set -- leakctl setup --wait 600
fi

# The env file that reached this container (env_file: LEAKHUB_ENV_FILE, default .env) must be
# the one Compose interpolated the bundle with: a test installation started with
# `--env-file .env.test` whose file does not name itself in LEAKHUB_ENV_FILE would otherwise
# run with production's settings.
if [ -n "${LEAKHUB_COMPOSE_PROJECT:-}" ] && [ -n "${COMPOSE_PROJECT_NAME:-}" ] \
    && [ "$LEAKHUB_COMPOSE_PROJECT" != "$COMPOSE_PROJECT_NAME" ]; then
  say "error: the settings reaching the containers are those of project '$COMPOSE_PROJECT_NAME'," \
      "not '$LEAKHUB_COMPOSE_PROJECT': set LEAKHUB_ENV_FILE=<this env file> in the env file" \
      "you pass with --env-file (compose/README.md, A second installation)"
  exit 1
fi

if [ "$(id -u)" != 0 ]; then
  # Started as the app user (e.g. `docker compose run --user 10001 setup ...`): nothing to
  # prepare that this user could do; just run the command.
  exec "$@"
fi

# 1. Ownership of the volume roots (not recursive: their contents are the app's own).
for dir in "$SECRETS" "${LEAKHUB_DATA_DIR:-/var/lib/leakhub/data}" \
           "${LEAKHUB_BACKUP_DIR:-/var/lib/leakhub/backups}"; do
  if [ -d "$dir" ]; then
    chown "$APP_UID:$APP_UID" "$dir"
  fi
done
chmod 0700 "$SECRETS"
# The data key's directory (LEAKHUB_DATA_KEY_FILE, a mount outside the data volumes; the key
# is generated there on first start): the app user's, like the secrets.
if [ -n "${LEAKHUB_DATA_KEY_FILE:-}" ] && [ "$LEAKHUB_DATA_KEY_FILE" != off ]; then
  KEY_DIR=$(dirname "$LEAKHUB_DATA_KEY_FILE")
  if [ -d "$KEY_DIR" ] && [ -w "$KEY_DIR" ]; then
    chown "$APP_UID:$APP_UID" "$KEY_DIR"; chmod 0700 "$KEY_DIR"
  fi
fi
if [ -d "$PG_DIR" ]; then chown "$PG_UID:$PG_UID" "$PG_DIR"; chmod 0700 "$PG_DIR"; fi
if [ -d "$KC_DIR" ]; then chown "$KC_UID:$KC_GID" "$KC_DIR"; chmod 0700 "$KC_DIR"; fi
if [ -d "$WEB_DIR" ]; then chown "$APP_UID:$APP_UID" "$WEB_DIR"; chmod 0700 "$WEB_DIR"; fi

# 2. Per-server copies.
# copy_secret NAME DIR UID GID: succeeds once DIR/NAME is an up-to-date copy (0600, UID:GID).
copy_secret() {
  src="$SECRETS/$1"
  dst="$2/$1"
  [ -d "$2" ] || return 0            # that server's volume is not mounted here
  [ -s "$src" ] || return 1          # not generated yet
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
    return 0
  fi
  tmp="$2/.$1.tmp"
  install -o "$3" -g "$4" -m 0600 "$src" "$tmp"
  mv -f "$tmp" "$dst"
  say "provided $1 to $2"
}

distribute() {
  waited=0
  while :; do
    missing=0
    for name in postgres-superuser-password postgres-leakhub-password postgres-keycloak-password; do
      copy_secret "$name" "$PG_DIR" "$PG_UID" "$PG_UID" || missing=1
    done
    for name in postgres-keycloak-password keycloak-bootstrap-client-secret; do
      copy_secret "$name" "$KC_DIR" "$KC_UID" "$KC_GID" || missing=1
    done
    for name in session-key postgres-leakhub-password keycloak-service-client-secret; do
      copy_secret "$name" "$WEB_DIR" "$APP_UID" "$APP_UID" || missing=1
    done
    # Optional (only when the customer's SMTP server needs a login): copied when present.
    copy_secret smtp-password "$WEB_DIR" "$APP_UID" "$APP_UID" || :
    # The data key ring (encryption at rest; made by `leakctl setup` before the secrets above,
    # absent only with LEAKHUB_DATA_KEY_FILE=off).
    copy_secret data-keyring "$WEB_DIR" "$APP_UID" "$APP_UID" || :
    [ "$missing" -eq 0 ] && return 0
    if [ "$waited" -ge "$COPY_TIMEOUT" ]; then
      say "error: the secrets were not generated within ${COPY_TIMEOUT}s"
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

# The copies are made in the background while the command runs in the foreground (it keeps
# stdin for prompts, and docker's stop signal reaches it directly). When the command ends, the
# container ends, and a copy loop still waiting with it.
distribute &
exec setpriv --reuid="$APP_UID" --regid="$APP_UID" --clear-groups -- "$@"
