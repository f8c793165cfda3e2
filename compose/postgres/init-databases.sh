#!/usr/bin/env bash
# Create Leakhub's two PostgreSQL roles and databases (idempotent; safe to run on every start).
#
#   role `leakhub`  owns database `leakhub`   (the app)
#   role `keycloak` owns database `keycloak`  (identity)
#
# Used by both
#   - the postgres image: mounted into /docker-entrypoint-initdb.d/, run (or sourced) once as the
#     superuser over the local socket (PGHOST unset), and
#   - the native stack (scripts/stack.py): run with PGHOST/PGPORT/PGUSER/PGPASSWORD set.
#
# Passwords are read from the files named by POSTGRES_LEAKHUB_PASSWORD_FILE and
# POSTGRES_KEYCLOAK_PASSWORD_FILE (secret files, never environment values) and are sent to psql on
# standard input, never on a command line. Re-running updates the passwords to the files' content.

leakhub_init_databases() (
  set -euo pipefail

  local lh_file="${POSTGRES_LEAKHUB_PASSWORD_FILE:?POSTGRES_LEAKHUB_PASSWORD_FILE must name the leakhub role password file}"
  local kc_file="${POSTGRES_KEYCLOAK_PASSWORD_FILE:?POSTGRES_KEYCLOAK_PASSWORD_FILE must name the keycloak role password file}"

  # First line of a file, without the trailing newline; SQL-quoted ('' for ').
  sql_literal_from_file() {
    local value
    [ -r "$1" ] || { echo "init-databases: cannot read $1" >&2; return 1; }
    IFS= read -r value < "$1" || [ -n "$value" ]
    [ -n "$value" ] || { echo "init-databases: $1 is empty" >&2; return 1; }
    printf "'%s'" "${value//\'/\'\'}"
  }

  local lh_pw kc_pw
  lh_pw="$(sql_literal_from_file "$lh_file")"
  kc_pw="$(sql_literal_from_file "$kc_file")"

  psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 --dbname "${PGDATABASE:-postgres}" <<SQL
-- Never write these statements (they carry passwords) into the server log, even on error.
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
SET password_encryption = 'scram-sha-256';

SELECT 'CREATE ROLE leakhub' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'leakhub')\gexec
SELECT 'CREATE ROLE keycloak' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'keycloak')\gexec
ALTER ROLE leakhub WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${lh_pw};
ALTER ROLE keycloak WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${kc_pw};

SELECT 'CREATE DATABASE leakhub OWNER leakhub ENCODING ''UTF8'' TEMPLATE template0'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'leakhub')\gexec
SELECT 'CREATE DATABASE keycloak OWNER keycloak ENCODING ''UTF8'' TEMPLATE template0'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'keycloak')\gexec
ALTER DATABASE leakhub OWNER TO leakhub;
ALTER DATABASE keycloak OWNER TO keycloak;

-- Each role reaches only its own database.
REVOKE CONNECT, TEMPORARY ON DATABASE leakhub FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE keycloak FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE leakhub TO leakhub;
GRANT CONNECT, TEMPORARY ON DATABASE keycloak TO keycloak;
SQL
  echo "init-databases: roles and databases leakhub, keycloak are in place"
)

leakhub_init_databases
