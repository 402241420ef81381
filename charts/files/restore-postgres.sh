#!/bin/bash
# Restores Synapse's database from the dump the fetch step restored into
# $STAGING_DIR/restore/synapse.dump. Stop every Synapse process first: this
# refuses to run while other sessions are connected to the database, unless
# FORCE=1.
set -euo pipefail
. "$(dirname "$0")/backup-common.sh"
. "$(dirname "$0")/backup-lib.sh"
: "${STAGING_DIR:?}" "${PGHOST:?}" "${PGPORT:?}" "${PGUSER:?}" "${PGDATABASE:?}" "${PASSWORD_FILE:?}"
file=$STAGING_DIR/restore/synapse.dump
trap 'rm -f "${PGPASSFILE:-}" "$file"' EXIT
use_password_file "$PASSWORD_FILE"
[ -f "$file" ] || die "no dump at $file: the fetch step restores it there"

# Synapse's pods and schema migration waiting on the database (wait_for_schema.py) only read, a moment at a time: not counted.
others=$(psql --no-password -X -A -t -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name <> 'kudo-wait-for-schema'" "$PGDATABASE")
if [ "$others" != 0 ] && [ "${FORCE:-0}" != 1 ]; then
  die "$others other session(s) use $PGDATABASE; stop every Synapse process (docs/operations.md, \"Backups and restore\") or set FORCE=1"
fi
log "restoring $file into $PGDATABASE on $PGHOST:$PGPORT"
# One transaction: a restore that fails leaves the database as it was.
pg_restore --no-password --clean --if-exists --no-owner --role="$PGUSER" --exit-on-error --single-transaction \
  --dbname="$PGDATABASE" "$file"
log "restored $file"
# A database that PostgreSQL's init script marked as waiting for this restore
# (a new major's, postgres-init.sh) is ready now: the schema migration and
# Synapse's processes, which wait on the mark, go on.
marked=$(psql --no-password -X -A -t -c "SELECT count(*) FROM pg_database WHERE datname = current_database() AND shobj_description(oid, 'pg_database') LIKE 'kudo: awaiting restore%'" "$PGDATABASE")
if [ "$marked" = 1 ]; then
  psql --no-password -X -q -v ON_ERROR_STOP=1 -v db="$PGDATABASE" "$PGDATABASE" <<'SQL'
COMMENT ON DATABASE :"db" IS NULL;
SQL
  log "cleared the mark of a database awaiting its restore: Synapse's schema migration and processes go on"
fi
