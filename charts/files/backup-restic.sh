#!/bin/sh
# Stores PATH as a snapshot tagged TAG in the backup volume's restic repository
# (encrypted, deduplicated, compressed), applies the retention there, and does
# the same in the off-site repository when one is configured. restic, not a
# script, decides what to keep: --keep-daily/--keep-weekly/--keep-monthly.
#
# Before writing, it asks restic how much the snapshot would add (a dry run: it
# reads only what changed since the last snapshot) and compares that with the
# volume's free space. When it is short it prunes first, so a full volume
# recovers instead of failing every night; when even that is not enough it
# stops and says by how much.
#
# Environment: RESTIC_PASSWORD_FILE (the local repository's password) and
# LOCAL_REPOSITORY; OFFSITE_REPOSITORY, OFFSITE_PASSWORD_FILE and
# S3_CREDENTIALS_DIR (the off-site repository, see backup-common.sh); REMOVE_AFTER_STORE=1
# removes PATH once it is stored (a staged dump).
#
# Usage: backup-restic.sh TAG PATH [PATH...]
set -eu
tag=$1
shift
: "${LOCAL_REPOSITORY:?}" "${RESTIC_PASSWORD_FILE:?}" "${KEEP_DAILY:?}" "${KEEP_WEEKLY:?}" "${KEEP_MONTHLY:?}"
. "$(dirname "$0")/backup-common.sh"
# The local repository's volume keeps this much free for restic's own bookkeeping (index, locks, prune's repacking).
RESERVE=$((256 * 1024 * 1024))

ensure_repository() {
  if ! restic cat config >/dev/null 2>&1; then
    log "initialising $RESTIC_REPOSITORY"
    restic init
  fi
}

forget() {
  # --host: restic groups snapshots by host; pods have random names.
  restic forget --host kudo --tag "$tag" --group-by host,tags \
    --keep-daily "$KEEP_DAILY" --keep-weekly "$KEEP_WEEKLY" --keep-monthly "$KEEP_MONTHLY" --prune
}

# Bytes the snapshot would add to the repository, by restic's own dry run.
would_add() {
  restic backup --host kudo --tag "$tag" --dry-run --json "$@" \
    | sed -n 's/.*"message_type":"summary".*"data_added":\([0-9]*\).*/\1/p' | tail -n 1
}

# Usage: store LOCAL_DIR|"" PATH...: LOCAL_DIR is where the repository's file system is mounted, "" for a remote one.
store() {
  loc=$1
  shift
  ensure_repository
  if [ -n "$loc" ]; then
    need=$(( $(would_add "$@") + RESERVE ))
    free=$(free_bytes "$loc")
    if [ "$free" -lt "$need" ]; then
      log "the backup volume has $free bytes free, this snapshot needs about $need: pruning first"
      forget
      free=$(free_bytes "$loc")
      [ "$free" -ge "$need" ] || die "the backup volume has $free bytes free after pruning, this snapshot needs about $need: enlarge backup.storage or lower backup.retention"
    fi
  fi
  restic backup --host kudo --tag "$tag" "$@"
  forget
  restic check
}

log "storing $* as $tag in the backup volume's repository"
RESTIC_REPOSITORY=$LOCAL_REPOSITORY
export RESTIC_REPOSITORY
# In a subshell: a local repository that cannot take the snapshot (a full volume) must not cost the off-site copy.
local_ok=1
( store "$LOCAL_REPOSITORY" "$@" ) || local_ok=0

if [ -n "${OFFSITE_REPOSITORY:-}" ]; then
  use_offsite_repository
  log "storing $* as $tag off-site in $OFFSITE_REPOSITORY"
  store "" "$@"
fi

[ "$local_ok" = 1 ] || die "the backup volume's repository did not take the snapshot (see above)${OFFSITE_REPOSITORY:+; the off-site copy was stored}"
# A staged dump has served its purpose once stored everywhere.
if [ "${REMOVE_AFTER_STORE:-0}" = 1 ]; then rm -rf -- "$@"; fi
log "stored $tag"
