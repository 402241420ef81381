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
. "$(dirname "$0")/backup-common.sh"
if [ "${FROM:-local}" = offsite ]; then
  [ -n "${OFFSITE_REPOSITORY:-}" ] || die "FROM=offsite needs backup.s3 (the off-site repository)"
  use_offsite_repository
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
