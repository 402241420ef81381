#!/bin/bash
# Deletes old backups of one kind, keeping the newest backup of each of the
# last KEEP_DAILY days, KEEP_WEEKLY ISO weeks and KEEP_MONTHLY months (the
# same policy as restic's --keep-daily/--keep-weekly/--keep-monthly). The
# newest backup is always kept; unfinished (.partial) files are not touched.
#
# Usage: backup-prune.sh DIR KIND
set -euo pipefail
dir=$1 kind=$2
: "${KEEP_DAILY:?}" "${KEEP_WEEKLY:?}" "${KEEP_MONTHLY:?}"

declare -A days=() weeks=() months=()
kept=0 deleted=0 first=1
# Newest first; names sort by their timestamp.
while IFS= read -r name; do
  stamp=${name#"$kind"-}
  stamp=${stamp:0:8}
  if ! [[ $stamp =~ ^[0-9]{8}$ ]]; then
    echo "skipping $name: no timestamp in its name" >&2
    continue
  fi
  day=$stamp
  week=$(date -u -d "$stamp" +%G-W%V)
  month=${stamp:0:6}
  keep=$first
  if [ -z "${days[$day]:-}" ] && [ "${#days[@]}" -lt "$KEEP_DAILY" ]; then days[$day]=1; keep=1; fi
  if [ -z "${weeks[$week]:-}" ] && [ "${#weeks[@]}" -lt "$KEEP_WEEKLY" ]; then weeks[$week]=1; keep=1; fi
  if [ -z "${months[$month]:-}" ] && [ "${#months[@]}" -lt "$KEEP_MONTHLY" ]; then months[$month]=1; keep=1; fi
  first=0
  if [ "$keep" = 1 ]; then
    kept=$((kept + 1))
  else
    rm -f -- "$dir/$name"
    echo "deleted $name"
    deleted=$((deleted + 1))
  fi
done < <(find "$dir" -maxdepth 1 -type f -name "$kind-*" ! -name '*.partial' -printf '%f\n' | sort -r)
echo "retention: kept $kept, deleted $deleted $kind backup(s)"
