#!/bin/sh
# Restores one snapshot of the backup volume's restic repository (or, with
# FROM=offsite, the off-site one) into TARGET: the newest with TAG, or
# SNAPSHOT=<id>. Lists the snapshots first, so the Job's log shows what there
# was to choose from.
#
# Usage: restic-fetch.sh TAG SNAPSHOT_PATH TARGET
#   SNAPSHOT_PATH: the folder inside the snapshot to restore (its contents land in TARGET)
set -eu
tag=$1 inside=$2 target=$3
log() { printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
if [ "${FROM:-local}" = offsite ]; then
  : "${OFFSITE_REPOSITORY:?FROM=offsite needs backup.s3}" "${OFFSITE_PASSWORD_FILE:?}" "${S3_CREDENTIALS_DIR:?}"
  AWS_ACCESS_KEY_ID=$(cat "$S3_CREDENTIALS_DIR/AWS_ACCESS_KEY_ID")
  AWS_SECRET_ACCESS_KEY=$(cat "$S3_CREDENTIALS_DIR/AWS_SECRET_ACCESS_KEY")
  RESTIC_REPOSITORY=$OFFSITE_REPOSITORY RESTIC_PASSWORD_FILE=$OFFSITE_PASSWORD_FILE
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY RESTIC_REPOSITORY RESTIC_PASSWORD_FILE
else
  : "${LOCAL_REPOSITORY:?}" "${RESTIC_PASSWORD_FILE:?}"
  RESTIC_REPOSITORY=$LOCAL_REPOSITORY
  export RESTIC_REPOSITORY
fi
restic snapshots --tag "$tag"
snapshot=${SNAPSHOT:-latest}
log "restoring $snapshot ($tag) from $RESTIC_REPOSITORY, $inside into $target"
mkdir -p "$target"
restic restore "$snapshot:$inside" --tag "$tag" --host kudo --target "$target"
log "restored $snapshot ($tag)"
