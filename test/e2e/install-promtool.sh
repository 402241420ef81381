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
# Beside it, postgres_exporter, which the same test runs against a real
# PostgreSQL so the table-bloat rule is evaluated on the exporter's own series.
#
# Idempotent and cache-friendly, like install-programs.sh: the binary lives
# under $KUDO_E2E_CACHE (default ~/.cache/kudo-e2e) and is fetched again only
# when it does not report the pinned version.
#
# Output: $KUDO_E2E_CACHE/promtool-env.sh (the paths for the test harness) and,
# on stdout, "promtool VERSION" and "postgres_exporter VERSION".
set -euo pipefail

readonly PROMETHEUS_VERSION=3.5.3    # Debian unstable's promtool package (3.5.3+ds1-*)
# The image pins v0.18.1, which the Go module proxy does not serve (403, "not available"; it serves 0.17.1 and
# 0.19.1). 0.19.1's collector/pg_stat_user_tables.go, whose series the alert reads, is byte-identical to 0.18.1's.
readonly POSTGRES_EXPORTER_VERSION=0.19.1   # Go module github.com/prometheus-community/postgres_exporter
readonly POSTGRES_EXPORTER_MODULE=github.com/prometheus-community/postgres_exporter

CACHE="${KUDO_E2E_CACHE:-$HOME/.cache/kudo-e2e}"
LOG_PREFIX=install-promtool
# shellcheck source=test/e2e/install-lib.sh
. "$(dirname "$0")/install-lib.sh"
# shellcheck source=test/e2e/install-kube-lib.sh
. "$(dirname "$0")/install-kube-lib.sh"   # module_dir, go_build, check_pins

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

PG_EXPORTER_BIN="$CACHE/bin/postgres_exporter"

pg_exporter_ok() {
  [[ -x $PG_EXPORTER_BIN ]] && "$PG_EXPORTER_BIN" --version 2>&1 | grep -q "^postgres_exporter, version $POSTGRES_EXPORTER_VERSION "
}

# `go install MODULE/cmd/postgres_exporter@vX` is refused: it asks the proxy for the module's version list
# (a deprecation check), which the proxy answers 403. The module has no replace directives, so a throwaway
# module that requires it builds upstream's code with upstream's dependency versions (checked below), as
# install-cnpg.sh does; the version is stamped where upstream's promu puts it.
install_postgres_exporter() {
  if pg_exporter_ok; then
    log "postgres_exporter $POSTGRES_EXPORTER_VERSION already built"
    return
  fi
  local mdir
  mdir=$(module_dir "$POSTGRES_EXPORTER_MODULE@v$POSTGRES_EXPORTER_VERSION")
  [[ -f $mdir/go.mod ]] || die "could not download $POSTGRES_EXPORTER_MODULE@v$POSTGRES_EXPORTER_VERSION"
  mkdir -p "$WORK/pg-exporter-build"
  cd "$WORK/pg-exporter-build"
  go mod init kudo.invalid/pg-exporter-build 2>/dev/null
  go mod edit -go="$(awk '$1 == "go" { print $2; exit }' "$mdir/go.mod")"
  go mod edit -require="$POSTGRES_EXPORTER_MODULE@v$POSTGRES_EXPORTER_VERSION"
  CGO_ENABLED=0 go_build postgres_exporter -trimpath \
    -ldflags="-s -w -X github.com/prometheus/common/version.Version=$POSTGRES_EXPORTER_VERSION" \
    -o "$PG_EXPORTER_BIN.tmp" "$POSTGRES_EXPORTER_MODULE/cmd/postgres_exporter"
  check_pins "$PG_EXPORTER_BIN.tmp" "$mdir/go.mod" "postgres_exporter v$POSTGRES_EXPORTER_VERSION"
  cd "$WORK"
  mv "$PG_EXPORTER_BIN.tmp" "$PG_EXPORTER_BIN"
  pg_exporter_ok || die "$PG_EXPORTER_BIN does not run or does not report version $POSTGRES_EXPORTER_VERSION"
}

write_env() {
  write_env_file promtool-env.sh "promtool and postgres_exporter" KUDO_E2E_PROMTOOL="$PROMTOOL_BIN" KUDO_E2E_POSTGRES_EXPORTER="$PG_EXPORTER_BIN"
}

timed "promtool $PROMETHEUS_VERSION" install_promtool
timed "postgres_exporter $POSTGRES_EXPORTER_VERSION" install_postgres_exporter
write_env

echo "promtool $("$PROMTOOL_BIN" --version | awk 'NR == 1 { print $3 }')"
echo "postgres_exporter $("$PG_EXPORTER_BIN" --version 2>&1 | awk 'NR == 1 { print $3 }')"
