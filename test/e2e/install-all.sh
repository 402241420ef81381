#!/usr/bin/env bash
# Runs the e2e install scripts side by side (npm run test:e2e calls this).
# On a cold machine they are long Go builds and downloads: run one after the
# other, the builds wait on the downloads and the downloads on the builds;
# together they keep both cores busy. Each script keeps its own lock, cache
# and checks, and works alone as before.
#
# Each one's log goes to a file and is shown when it ends (the whole log if it
# failed); the exit status is non-zero if any failed. Their "name version"
# lines go to stdout, in a fixed order.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LOG_PREFIX=install-all
# shellcheck source=test/e2e/install-lib.sh
. "$HERE/install-lib.sh"
cd "$HERE"

readonly SCRIPTS=(install-programs.sh install-apiserver.sh install-cnpg.sh install-promtool.sh install-pitr.sh)
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT

t0=$(now)
declare -A PIDS
for s in "${SCRIPTS[@]}"; do
  bash "./$s" >"$LOGS/$s.out" 2>"$LOGS/$s.log" &
  PIDS[$s]=$!
done

failed=()
for s in "${SCRIPTS[@]}"; do
  if wait "${PIDS[$s]}"; then
    log "$s finished: $(tail -n 1 "$LOGS/$s.log")"
  else
    failed+=("$s")
    log "$s FAILED; its log:"
    cat "$LOGS/$s.log" >&2
  fi
done
for s in "${SCRIPTS[@]}"; do cat "$LOGS/$s.out"; done
log "all installs in $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }')"
[[ ${#failed[@]} == 0 ]] || die "failed: ${failed[*]}"
