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

others=$(psql --no-password -X -A -t -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()" "$PGDATABASE")
if [ "$others" != 0 ] && [ "${FORCE:-0}" != 1 ]; then
  die "$others other session(s) use $PGDATABASE; stop every Synapse process (README, \"Restore\") or set FORCE=1"
fi
log "restoring $file into $PGDATABASE on $PGHOST:$PGPORT"
# One transaction: a restore that fails leaves the database as it was.
pg_restore --no-password --clean --if-exists --no-owner --role="$PGUSER" --exit-on-error --single-transaction \
  --dbname="$PGDATABASE" "$file"
log "restored $file"
