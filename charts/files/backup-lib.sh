#!/bin/bash
# Shared by the backup and restore scripts (sourced, not run).
#
# A backup is written as NAME.partial, verified, then renamed to NAME, so a
# failed or interrupted run never replaces or hides the last good backup.
# Names carry a UTC timestamp: <kind>-YYYYMMDDTHHMMSSZ.<ext>.

log() { printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

# libpq's password file, written from the mounted Secret into memory (/tmp).
use_password_file() { # SECRET_FILE
  PGPASSFILE=$(mktemp)
  sh "$(dirname "${BASH_SOURCE[0]}")/pgpass.sh" "$1" "$PGUSER" "$PGPASSFILE"
  export PGPASSFILE
}

# The newest finished backup of a kind, or the named one.
pick_backup() { # DIR KIND NAME|latest
  local dir=$1 kind=$2 name=$3 file
  if [ "$name" = latest ]; then
    file=$(find "$dir" -maxdepth 1 -type f -name "$kind-*" ! -name '*.partial' -printf '%f\n' | sort | tail -n 1)
    [ -n "$file" ] || die "no $kind backup in $dir"
  else
    file=$name
  fi
  [ -f "$dir/$file" ] || die "no backup $dir/$file"
  printf '%s\n' "$dir/$file"
}
