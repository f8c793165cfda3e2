#!/bin/bash
# Entrypoint of the `keycloak` service (docker-compose.yml), run by the image's bash as uid 1000.
#
# Keycloak reads no *_FILE variables, so this waits (bounded) for the one-shot `setup` service
# to provide this server's copies of its secrets in the keycloak_secrets volume, exports them
# and hands over to kc.sh. The values never appear in the compose file, the container's
# configuration (`docker inspect`) or a log line.
set -euo pipefail

dir="${LEAKHUB_KEYCLOAK_SECRETS_DIR:-/run/keycloak-secrets}"
timeout="${LEAKHUB_SECRET_WAIT_SECONDS:-120}"
needed=(postgres-keycloak-password keycloak-bootstrap-client-secret)

say() { printf 'keycloak-entrypoint: %s\n' "$*" >&2; }

waited=0
for name in "${needed[@]}"; do
  until [[ -s "$dir/$name" && -r "$dir/$name" ]]; do
    if (( waited >= timeout )); then
      say "error: secret '$name' did not appear in $dir within ${timeout}s;" \
          "the setup service provides it: see \`docker compose logs setup\`"
      exit 1
    fi
    (( waited % 15 == 0 )) && say "waiting for secret '$name' from the setup service"
    sleep 1
    waited=$((waited + 1))
  done
done

# $(<file) drops the trailing newline the generator writes.
KC_DB_PASSWORD="$(<"$dir/postgres-keycloak-password")"
KC_BOOTSTRAP_ADMIN_CLIENT_SECRET="$(<"$dir/keycloak-bootstrap-client-secret")"
export KC_DB_PASSWORD KC_BOOTSTRAP_ADMIN_CLIENT_SECRET

exec /opt/keycloak/bin/kc.sh "$@"
