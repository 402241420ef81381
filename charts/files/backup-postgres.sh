#!/bin/bash
# Dumps Synapse's database (custom format) into $BACKUP_DIR/postgres, then
# applies the retention policy. pg_dump comes from the same image as the
# server, so its major version matches.
set -euo pipefail
. "$(dirname "$0")/backup-lib.sh"
: "${BACKUP_DIR:?}" "${PGHOST:?}" "${PGPORT:?}" "${PGUSER:?}" "${PGDATABASE:?}" "${PASSWORD_FILE:?}"

dir=$BACKUP_DIR/postgres
mkdir -p "$dir"
name=synapse-$(date -u +%Y%m%dT%H%M%SZ).dump
partial=$dir/$name.partial
trap 'rm -f "$partial" "${PGPASSFILE:-}"' EXIT
use_password_file "$PASSWORD_FILE"

log "dumping $PGDATABASE from $PGHOST:$PGPORT with $(pg_dump --version)"
# Without the one-time keys' data (Synapse's backup guide): restored ones were
# already handed out, and handing them out again breaks decryption.
pg_dump --format=custom --compress=6 --no-password --exclude-table-data=e2e_one_time_keys_json --file="$partial" "$PGDATABASE"
# A dump pg_restore cannot read, or one without Synapse's tables, is no backup.
tables=$(pg_restore --list "$partial" | grep -c ' TABLE DATA ' || true)
[ "$tables" -gt 0 ] || die "$partial lists no table data; keeping the previous backups"
sync "$partial"
mv "$partial" "$dir/$name"
log "wrote $dir/$name ($(du -h "$dir/$name" | cut -f1), $tables tables)"
bash "$(dirname "$0")/backup-prune.sh" "$dir" synapse
