#!/usr/bin/env bash
# Builds the CloudNativePG operator (its `manager` binary, which runs as
# `manager controller` in the operator's pod) for test/e2e/cnpg-operator.e2e.test.ts,
# and keeps the operator's own release manifest beside it: the test takes the
# webhook configurations, RBAC and the CRDs it does not pin from there.
# Run test/e2e/install-apiserver.sh too: the test runs the operator against
# that API server.
#
# Only package registries are reachable from our machines, so the operator is
# compiled from the Go module proxy; nothing comes from release pages.
#
# Idempotent and cache-friendly like install-apiserver.sh: the binary and the
# manifest live under $KUDO_E2E_CACHE (default ~/.cache/kudo-e2e) and are
# rebuilt only when the version there is not the pinned one.
#
# Output: KUDO_E2E_CNPG_MANAGER and KUDO_E2E_CNPG_MANIFEST in
# $KUDO_E2E_CACHE/cnpg-env.sh (source it), and on stdout one
# "name version" line.
set -euo pipefail

# The operator version the pinned CRDs (crds/cloudnative-pg) come from.
readonly CNPG_VERSION=1.30.0          # Go module github.com/cloudnative-pg/cloudnative-pg
readonly CNPG_MODULE=github.com/cloudnative-pg/cloudnative-pg

CACHE="${KUDO_E2E_CACHE:-$HOME/.cache/kudo-e2e}"

# Static, as the operator's release build (.goreleaser.yml) is.
export CGO_ENABLED=0

LOG_PREFIX=install-cnpg
# shellcheck source=test/e2e/install-lib.sh
. "$(dirname "$0")/install-lib.sh"
# shellcheck source=test/e2e/install-kube-lib.sh
. "$(dirname "$0")/install-kube-lib.sh"

install_begin .install-cnpg.lock

MANAGER_BIN="$CACHE/bin/cnpg-manager-v$CNPG_VERSION"
MANIFEST="$CACHE/cnpg-$CNPG_VERSION.yaml"

# ---------------------------------------------------------------------------
# The operator's manager, cmd/manager of the module.
# `go install github.com/cloudnative-pg/cloudnative-pg/cmd/manager@vX` is
# refused here: it asks the proxy for the module's version list to look for a
# deprecation notice, and our proxy answers that list with "403 Forbidden ...
# This module version is not available" while it serves the version itself.
# The module has no replace directives, so a throwaway module that requires it
# builds exactly upstream's code with upstream's dependency versions (checked
# below). Flags as upstream's .goreleaser.yml: CGO off, -s -w, the version,
# commit and date stamped into pkg/versions; the commit is the tag's (the
# proxy records it), the date the module's publication time, so the build is
# reproducible; -trimpath stands in for its gcflags' -trimpath.
# ---------------------------------------------------------------------------
install_manager() {
  if [[ -x $MANAGER_BIN ]] && "$MANAGER_BIN" version 2>/dev/null | grep -q "^Build: {Version:$CNPG_VERSION "; then
    log "cloudnative-pg manager v$CNPG_VERSION already built"
    return
  fi
  local mdir commit date pkg=$CNPG_MODULE/pkg/versions
  mdir=$(module_dir "$CNPG_MODULE@v$CNPG_VERSION")
  [[ -f $mdir/go.mod ]] || die "could not download $CNPG_MODULE@v$CNPG_VERSION"
  commit=$(cd "$WORK" && go list -m -f '{{with .Origin}}{{.Hash}}{{end}}' "$CNPG_MODULE@v$CNPG_VERSION")
  date=$(cd "$WORK" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "$CNPG_MODULE@v$CNPG_VERSION")
  local dir="$WORK/cnpg-build"
  mkdir -p "$dir"
  cd "$dir"
  go mod init kudo.invalid/cnpg-build 2>/dev/null
  # Upstream's language version: only the main module's go line counts.
  go mod edit -go="$(awk '$1 == "go" { print $2; exit }' "$mdir/go.mod")"
  go mod edit -require="$CNPG_MODULE@v$CNPG_VERSION"
  go_build "cloudnative-pg manager" -trimpath \
    -ldflags="-s -w -X $pkg.buildVersion=$CNPG_VERSION -X $pkg.buildCommit=${commit:-none} -X $pkg.buildDate=$date" \
    -o "$MANAGER_BIN.tmp" "$CNPG_MODULE/cmd/manager"
  check_pins "$MANAGER_BIN.tmp" "$mdir/go.mod" "$CNPG_MODULE v$CNPG_VERSION"
  cd "$WORK"
  mv "$MANAGER_BIN.tmp" "$MANAGER_BIN"
}

# The release manifest that upstream's install instructions apply
# (releases/cnpg-X.yaml in the module: CRDs, RBAC, webhooks, Deployment).
install_manifest() {
  local mdir
  mdir=$(module_dir "$CNPG_MODULE@v$CNPG_VERSION")
  [[ -f $mdir/releases/cnpg-$CNPG_VERSION.yaml ]] || die "the module has no releases/cnpg-$CNPG_VERSION.yaml"
  if cmp -s "$mdir/releases/cnpg-$CNPG_VERSION.yaml" "$MANIFEST"; then
    log "release manifest cnpg-$CNPG_VERSION.yaml already there"
    return
  fi
  install -m 0644 "$mdir/releases/cnpg-$CNPG_VERSION.yaml" "$MANIFEST.tmp"
  mv "$MANIFEST.tmp" "$MANIFEST"
}

write_env() {
  write_env_file cnpg-env.sh "the CloudNativePG operator" KUDO_E2E_CNPG_MANAGER="$MANAGER_BIN" KUDO_E2E_CNPG_MANIFEST="$MANIFEST"
}

t_all=$(now)
timed "cloudnative-pg manager v$CNPG_VERSION" install_manager
timed "release manifest" install_manifest
# Fail here, not in a test, if it does not run on this machine.
"$MANAGER_BIN" version >/dev/null || die "$MANAGER_BIN does not run"
write_env
log "all done in $(awk -v a="$t_all" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'); paths in $CACHE/cnpg-env.sh"

# "Build: {Version:1.30.0 Commit:... Date:...}" -> the version.
echo "cloudnative-pg $("$MANAGER_BIN" version | sed -n 's/^Build: {Version:\([^ ]*\) .*/\1/p')"
