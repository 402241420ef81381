#!/bin/bash
# Run once by the postgres image's entrypoint, on a new data directory, as
# the superuser through the local socket. Synapse gets a role of its own,
# not the superuser, owning a database with the C collation and ctype that
# Synapse insists on. The password is a psql variable, which psql quotes, so
# no character in it can change the statement; psql reads it from the file
# itself (a backquoted \set), so it is never on a command line, where every
# process of the user could read it in /proc.
set -euo pipefail
psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v role="$SYNAPSE_DB_USER" -v db="$SYNAPSE_DB_NAME" <<'SQL'
\set pw `cat "$SYNAPSE_DB_PASSWORD_FILE"`
CREATE ROLE :"role" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"role" ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
-- Read access to the statistics views, for the metrics exporter.
GRANT pg_monitor TO :"role";
SQL

# A new major's data directory on a volume that holds an older one (docs/operations.md,
# "PostgreSQL 17 → 18"): this database stays empty until the dump is restored
# into it. The comment says so; the schema migration's first step and every
# Synapse process wait on it (wait_for_schema.py) until the restore step
# clears it, so an apply of everything before the restore starts no server on
# an empty database.
older=""
for dir in "$(dirname "$PGDATA")"/pgdata "$(dirname "$PGDATA")"/pgdata-*; do
  if [ "$dir" != "$PGDATA" ] && [ -f "$dir/PG_VERSION" ]; then
    read -r major <"$dir/PG_VERSION"
    older="${older:+$older, }${dir##*/} (PostgreSQL $major)"
  fi
done
if [ -n "$older" ]; then
  note="kudo: awaiting restore: initialised beside $older; restore the dump (docs/operations.md, \"PostgreSQL 17 → 18\"), or run COMMENT ON DATABASE $SYNAPSE_DB_NAME IS NULL to start with an empty one"
  psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v db="$SYNAPSE_DB_NAME" -v note="$note" <<'SQL'
COMMENT ON DATABASE :"db" IS :'note';
SQL
fi
