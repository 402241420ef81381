#!/bin/bash
# Restores Synapse's media store from an archive in $BACKUP_DIR/media: the
# newest, or BACKUP=<file name>. Files in the archive replace their
# namesakes; other files stay. Stop Synapse first.
set -euo pipefail
. "$(dirname "$0")/backup-lib.sh"
: "${BACKUP_DIR:?}" "${MEDIA_DIR:?}"

file=$(pick_backup "$BACKUP_DIR/media" media "${BACKUP:-latest}")
log "restoring $file into $MEDIA_DIR"
tar --extract --file="$file" --directory="$MEDIA_DIR" --no-same-owner
log "restored $(tar --list --file="$file" | grep -vc '/$') files"
