#!/bin/sh
# Copies a finished backup to the restic repository (encrypted,
# deduplicated), then applies the same retention there. RESTIC_REPOSITORY
# and RESTIC_PASSWORD_FILE come from the environment, the S3 keys from the
# files in S3_CREDENTIALS_DIR (the S3 client reads them only from its
# environment, so they are exported here rather than put in the pod spec).
#
# Usage: backup-restic.sh TAG PATH
set -eu
tag=$1 path=$2
if [ -n "${S3_CREDENTIALS_DIR:-}" ]; then
  AWS_ACCESS_KEY_ID=$(cat "$S3_CREDENTIALS_DIR/AWS_ACCESS_KEY_ID")
  AWS_SECRET_ACCESS_KEY=$(cat "$S3_CREDENTIALS_DIR/AWS_SECRET_ACCESS_KEY")
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
fi
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
