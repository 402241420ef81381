#!/usr/bin/env bash
# Installs promtool, Prometheus's own rule checker and rule unit-test runner,
# for the alerting-rule test (test/e2e/alerts.e2e.test.ts): `promtool check
# rules` parses the rendered PrometheusRules as Prometheus does, and `promtool
# test rules` evaluates them over synthetic series with Prometheus's engine.
#
# Only package registries are reachable from our machines. promtool comes from
# Debian unstable's package of Prometheus 3.5 (its long-term-support release):
# one static binary, downloaded with apt's signature checks and unpacked here,
# never installed. (Compiling a newer one from the Go module proxy took eight
# minutes of a cold CI run; the rule language the tests use is the same.)
#
# Idempotent and cache-friendly, like install-programs.sh: the binary lives
# under $KUDO_E2E_CACHE (default ~/.cache/kudo-e2e) and is fetched again only
# when it does not report the pinned version.
#
# Output: $KUDO_E2E_CACHE/promtool-env.sh (the path for the test harness) and,
# on stdout, "promtool VERSION".
set -euo pipefail

readonly PROMETHEUS_VERSION=3.5.3    # Debian unstable's promtool package (3.5.3+ds1-*)

CACHE="${KUDO_E2E_CACHE:-$HOME/.cache/kudo-e2e}"
LOG_PREFIX=install-promtool
# shellcheck source=test/e2e/install-lib.sh
. "$(dirname "$0")/install-lib.sh"

install_begin .install-promtool.lock

PROMTOOL_BIN="$CACHE/bin/promtool"

promtool_ok() {
  local v
  [[ -x $PROMTOOL_BIN ]] && v=$("$PROMTOOL_BIN" --version 2>/dev/null) && [[ $v == "promtool, version $PROMETHEUS_VERSION"* ]]
}

install_promtool() {
  if promtool_ok; then
    log "promtool $PROMETHEUS_VERSION already installed"
    return
  fi
  local have
  have=$(debian_version_of promtool sid)
  [[ $have == "$PROMETHEUS_VERSION"+* ]] \
    || die "Debian unstable has promtool ${have:-none}, not $PROMETHEUS_VERSION: update PROMETHEUS_VERSION"
  debian_download "$WORK/debs" "promtool=$have"
  dpkg-deb -x "$WORK"/debs/promtool_*.deb "$WORK/tree"
  install -m 0755 "$WORK/tree/usr/bin/promtool" "$PROMTOOL_BIN"
  promtool_ok || die "$PROMTOOL_BIN does not run or does not report version $PROMETHEUS_VERSION"
}

write_env() {
  write_env_file promtool-env.sh promtool KUDO_E2E_PROMTOOL="$PROMTOOL_BIN"
}

timed "promtool $PROMETHEUS_VERSION" install_promtool
write_env

echo "promtool $("$PROMTOOL_BIN" --version | awk 'NR == 1 { print $3 }')"
