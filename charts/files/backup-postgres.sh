#!/bin/bash
# Dumps Synapse's database for the restic step that follows (backup-restic.sh),
# into $STAGING_DIR/postgres/synapse.dump on the backup volume. pg_dump comes
# from the same image as the server, so its major version matches.
#
# The dump is uncompressed: restic compresses it and, because consecutive
# nights' dumps are mostly the same bytes, stores only what changed; a
# compressed dump would differ everywhere and be stored whole every night.
set -euo pipefail
. "$(dirname "$0")/backup-common.sh"
. "$(dirname "$0")/backup-lib.sh"
: "${STAGING_DIR:?}" "${PGHOST:?}" "${PGPORT:?}" "${PGUSER:?}" "${PGDATABASE:?}" "${PASSWORD_FILE:?}"

dir=$STAGING_DIR/postgres
mkdir -p "$dir"
out=$dir/synapse.dump
partial=$out.partial
trap 'rm -f "$partial" "${PGPASSFILE:-}"' EXIT
# What an earlier run left (it failed after its dump): never stored twice.
rm -f "$out"
use_password_file "$PASSWORD_FILE"

# Room for the dump: the database's size is its upper bound (indexes are not dumped).
need=$(psql --no-password -X -A -t -c 'SELECT pg_database_size(current_database())' "$PGDATABASE")
free=$(free_bytes "$STAGING_DIR")
[ "$free" -gt "$need" ] || die "the backup volume has $(human "$free") free, the dump of $PGDATABASE may need $(human "$need"): enlarge backup.storage or lower backup.retention"

log "dumping $PGDATABASE from $PGHOST:$PGPORT with $(pg_dump --version)"
# Without the one-time keys' data (Synapse's backup guide): restored ones were
# already handed out, and handing them out again breaks decryption.
pg_dump --format=custom --compress=0 --no-password --exclude-table-data=e2e_one_time_keys_json --file="$partial" "$PGDATABASE"
# A dump pg_restore cannot read, or one without Synapse's tables, is no backup.
tables=$(pg_restore --list "$partial" | grep -c ' TABLE DATA ' || true)
[ "$tables" -gt 0 ] || die "$partial lists no table data; the previous backups stay as they are"
sync "$partial"
mv "$partial" "$out"
log "dumped $(human "$(stat -c %s "$out")") ($tables tables) to $out"
