#!/bin/bash
# Shared by the backup and restore scripts of the PostgreSQL image (sourced, not run).

log() { printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

# libpq's password file, written from the mounted Secret into memory (/tmp).
use_password_file() { # SECRET_FILE
  PGPASSFILE=$(mktemp)
  sh "$(dirname "${BASH_SOURCE[0]}")/pgpass.sh" "$1" "$PGUSER" "$PGPASSFILE"
  export PGPASSFILE
}

# Bytes free on the file system holding DIR, as an unprivileged user may use them.
free_bytes() { # DIR
  df -P -B1 "$1" | awk 'NR == 2 { print $4 }'
}

human() { # BYTES
  awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB", u); i = 1; while (b >= 1024 && i < 5) { b /= 1024; i++ } printf "%.1f %s\n", b, u[i] }'
}
