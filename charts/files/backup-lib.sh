#!/bin/bash
# Shared by the backup and restore scripts of the PostgreSQL image (sourced, not
# run, after backup-common.sh).

# libpq's password file, written from the mounted Secret into memory (/tmp).
use_password_file() { # SECRET_FILE
  PGPASSFILE=$(mktemp)
  sh "$(dirname "${BASH_SOURCE[0]}")/pgpass.sh" "$1" "$PGUSER" "$PGPASSFILE"
  export PGPASSFILE
}

human() { # BYTES
  awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB", u); i = 1; while (b >= 1024 && i < 5) { b /= 1024; i++ } printf "%.1f %s\n", b, u[i] }'
}
