#!/bin/sh
# Copies a finished backup to the restic repository (encrypted,
# deduplicated), then applies the same retention there. RESTIC_REPOSITORY,
# RESTIC_PASSWORD and the S3 credentials come from the environment.
#
# Usage: backup-restic.sh TAG PATH
set -eu
tag=$1 path=$2
: "${KEEP_DAILY:?}" "${KEEP_WEEKLY:?}" "${KEEP_MONTHLY:?}"
# --host: restic groups snapshots by host; pods have random names.
if ! restic cat config >/dev/null 2>&1; then
  echo "initialising $RESTIC_REPOSITORY"
  restic init
fi
restic backup --host kudo --tag "$tag" "$path"
restic forget --host kudo --tag "$tag" --group-by host,tags \
  --keep-daily "$KEEP_DAILY" --keep-weekly "$KEEP_WEEKLY" --keep-monthly "$KEEP_MONTHLY" --prune
restic check
