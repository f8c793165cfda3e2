#!/usr/bin/env bash
# The parts of the official postgres image's docker-entrypoint.sh that docker-compose.yml uses
# (tests/compose/README.md): POSTGRES_USER/PASSWORD/DB and their *_FILE variants,
# POSTGRES_INITDB_ARGS, first-start initdb with scram-sha-256 for TCP connections, then
# /docker-entrypoint-initdb.d/* (*.sh run when executable, else sourced; *.sql via psql) on a
# temporary socket-only server. Runs as the postgres user (compose sets `user: 999:999`).
set -Eeo pipefail

file_env() {
  # One assignment per `local`: words are expanded before `local` assigns, so `val="$def"` in
  # the same statement would read an unset $def (POSTGRES_DB's default was lost that way).
  local var="$1"
  local file_var="${1}_FILE"
  local def="${2:-}"
  local val="$def"
  if [ "${!var:-}" ] && [ "${!file_var:-}" ]; then
    echo >&2 "error: both $var and $file_var are set (but are exclusive)"; exit 1
  fi
  if [ "${!var:-}" ]; then val="${!var}"
  elif [ "${!file_var:-}" ]; then val="$(< "${!file_var}")"
  fi
  export "$var"="$val"
  unset "$file_var"
}

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

if [ "$1" = 'postgres' ] && [ "$(id -u)" != 0 ]; then
  mkdir -p "$PGDATA"
  chmod 00700 "$PGDATA" 2>/dev/null || :
  # As the official entrypoint (docker_create_db_directories): the socket directory may be on
  # an empty tmpfs.
  mkdir -p /var/run/postgresql || :
  chmod 03777 /var/run/postgresql 2>/dev/null || :
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    if [ -z "$POSTGRES_PASSWORD" ]; then
      echo >&2 "error: database is uninitialized and superuser password is not specified"; exit 1
    fi
    # shellcheck disable=SC2086
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
      $POSTGRES_INITDB_ARGS
    printf '\nhost all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >> "$PGDATA/pg_hba.conf"
    PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
    export PGPASSWORD="$POSTGRES_PASSWORD"
    psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
    if [ "$POSTGRES_DB" != postgres ]; then
      "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db" ;'
    fi
    for f in /docker-entrypoint-initdb.d/*; do
      case "$f" in
        *.sh) if [ -x "$f" ]; then echo "$0: running $f"; "$f"
              else echo "$0: sourcing $f"; . "$f"; fi ;;
        *.sql) echo "$0: running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
        *) echo "$0: ignoring $f" ;;
      esac
    done
    unset PGPASSWORD
    PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -m fast -w stop
    echo "PostgreSQL init process complete; ready for start up."
  fi
fi
exec "$@"
