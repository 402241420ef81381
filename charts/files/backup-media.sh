#!/bin/bash
# Archives Synapse's media store (tar, uncompressed: media is mostly
# compressed already) into $BACKUP_DIR/media, then applies the retention
# policy. Media files are written once and never changed, so archiving the
# live store is consistent file by file.
set -euo pipefail
. "$(dirname "$0")/backup-lib.sh"
: "${BACKUP_DIR:?}" "${MEDIA_DIR:?}"

dir=$BACKUP_DIR/media
mkdir -p "$dir"
name=media-$(date -u +%Y%m%dT%H%M%SZ).tar
partial=$dir/$name.partial
trap 'rm -f "$partial"' EXIT

log "archiving $MEDIA_DIR"
tar --create --file="$partial" --directory="$MEDIA_DIR" .
tar --list --file="$partial" >/dev/null
sync "$partial"
mv "$partial" "$dir/$name"
log "wrote $dir/$name ($(du -h "$dir/$name" | cut -f1), $(tar --list --file="$dir/$name" | grep -vc '/$') files)"
bash "$(dirname "$0")/backup-prune.sh" "$dir" media
