#!/usr/bin/env bash
# Installs promtool, Prometheus's own rule checker and rule unit-test runner,
# for the alerting-rule test (test/e2e/alerts.e2e.test.ts): `promtool check
# rules` parses the rendered PrometheusRules as Prometheus does, and `promtool
# test rules` evaluates them over synthetic series with Prometheus's engine.
#
# Only package registries are reachable from our machines, so promtool is
# compiled from the Go module proxy. Prometheus 3.x publishes its Go module as
# v0.3MM.P (v0.316.0 is Prometheus 3.16.0); its go.mod has no replace
# directives, so `go install` builds it as is. The build is big (Prometheus's
# whole engine and its service-discovery dependencies): minutes when cold.
#
# Idempotent and cache-friendly, like install-programs.sh: the binary lives
# under $KUDO_E2E_CACHE (default ~/.cache/kudo-e2e) and is rebuilt only when
# it does not report the pinned version; Go's module and build caches stay at
# their defaults, so a wiped KUDO_E2E_CACHE relinks instead of compiling.
#
# Output: $KUDO_E2E_CACHE/promtool-env.sh (the path for the test harness) and,
# on stdout, "promtool VERSION".
set -euo pipefail

readonly PROMETHEUS_VERSION=3.16.0
readonly PROMETHEUS_MODULE=github.com/prometheus/prometheus
readonly PROMETHEUS_MODULE_VERSION=v0.316.0   # Go module of Prometheus $PROMETHEUS_VERSION

CACHE="${KUDO_E2E_CACHE:-$HOME/.cache/kudo-e2e}"
LOG_PREFIX=install-promtool
# shellcheck source=test/e2e/install-lib.sh
. "$(dirname "$0")/install-lib.sh"

mkdir -p "$CACHE/bin"
# A lock of its own: the other install scripts may run at the same time and touch other files.
exec 9>"$CACHE/.install-promtool.lock"
flock 9

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

PROMTOOL_BIN="$CACHE/bin/promtool"

promtool_ok() {
  [[ -x $PROMTOOL_BIN ]] && "$PROMTOOL_BIN" --version 2>/dev/null | grep -q "^promtool, version $PROMETHEUS_VERSION "
}

install_promtool() {
  if promtool_ok; then
    log "promtool $PROMETHEUS_VERSION already installed"
    return
  fi
  command -v go >/dev/null || die "go is not installed (promtool is built from the Go module proxy)"
  # Built outside Prometheus's release tooling, the binary knows no version;
  # set it as their Makefile (promu) does, so --version says which one it is.
  CGO_ENABLED=0 GOBIN="$WORK/bin" go install -trimpath \
    -ldflags "-X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION -X github.com/prometheus/common/version.Branch=$PROMETHEUS_MODULE_VERSION" \
    "$PROMETHEUS_MODULE/cmd/promtool@$PROMETHEUS_MODULE_VERSION" 2>"$WORK/promtool-build.log" \
    || { grep -v '^go: downloading' "$WORK/promtool-build.log" >&2; die "promtool build failed"; }
  mv "$WORK/bin/promtool" "$PROMTOOL_BIN"
  promtool_ok || die "$PROMTOOL_BIN does not run or does not report version $PROMETHEUS_VERSION"
}

write_env() {
  cat >"$CACHE/promtool-env.sh.tmp" <<EOF
# Written by test/e2e/install-promtool.sh; source it to find promtool.
export KUDO_E2E_PROMTOOL='$PROMTOOL_BIN'
EOF
  mv "$CACHE/promtool-env.sh.tmp" "$CACHE/promtool-env.sh"
}

timed "promtool $PROMETHEUS_VERSION" install_promtool
write_env

echo "promtool $("$PROMTOOL_BIN" --version | awk 'NR == 1 { print $3 }')"
