# Shared by the e2e install scripts (sourced). Set LOG_PREFIX first.

# A dependency that asks for a newer Go must fail loudly rather than make the
# go command download a toolchain from outside the module proxy.
export GOTOOLCHAIN=local

log() { printf '[%s] %s\n' "$LOG_PREFIX" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

now() { date +%s.%N; }
# Prints how long a step took, so slow cold installs show up in CI logs.
timed() {
  local name=$1 t0
  shift
  t0=$(now)
  "$@"
  log "$name done in $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }')"
}
