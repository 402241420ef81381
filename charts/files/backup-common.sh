#!/bin/sh
# Shared by the backup and restore scripts of both images, the PostgreSQL
# image's (bash) and restic's (BusyBox sh): sourced, not run. POSIX sh only.

log() { printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

# Bytes free on the file system holding DIR, as an unprivileged user may use them.
free_bytes() { # DIR
  df -P -B1 "$1" | awk 'NR == 2 { print $4 }'
}

# Points restic at the off-site repository: its own password file, and the S3
# keys from their files (the S3 client reads them only from its environment,
# and they stay out of the pod spec).
use_offsite_repository() {
  : "${OFFSITE_REPOSITORY:?}" "${OFFSITE_PASSWORD_FILE:?}" "${S3_CREDENTIALS_DIR:?}"
  AWS_ACCESS_KEY_ID=$(cat "$S3_CREDENTIALS_DIR/AWS_ACCESS_KEY_ID")
  AWS_SECRET_ACCESS_KEY=$(cat "$S3_CREDENTIALS_DIR/AWS_SECRET_ACCESS_KEY")
  RESTIC_REPOSITORY=$OFFSITE_REPOSITORY RESTIC_PASSWORD_FILE=$OFFSITE_PASSWORD_FILE
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY RESTIC_REPOSITORY RESTIC_PASSWORD_FILE
}
