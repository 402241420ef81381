#!/usr/bin/env bash
# Builds a real Kubernetes API server and etcd for the admission tests
# (test/e2e/apiserver.ts): like controller-runtime's envtest, the server runs on
# loopback with no kubelet, scheduler or controller-manager, so manifests are
# validated, defaulted and admitted exactly as a cluster would, and nothing runs.
#
# Only package registries are reachable from our machines, so both programs are
# compiled from the Go module proxy; nothing comes from release pages.
#
# Idempotent and cache-friendly: the binaries live under $KUDO_E2E_CACHE
# (default ~/.cache/kudo-e2e) and each step is skipped when the right version is
# already there. Go's module and build caches stay at their defaults, so a wiped
# KUDO_E2E_CACHE relinks in well under a minute instead of a cold compile.
#
# Output: KUDO_E2E_KUBE_APISERVER and KUDO_E2E_ETCD in
# $KUDO_E2E_CACHE/apiserver-env.sh (source it), and on stdout one
# "name version" line per program.
set -euo pipefail

# Pinned versions. Kubernetes (KUBE_VERSION) is pinned in install-kube-lib.sh,
# for every Kubernetes program we build.
# The etcd that Kubernetes v1.36.3 itself pins: build/dependencies.yaml,
# kubeadm's DefaultEtcdVersion (3.6.8-0, also its choice for 1.34 and 1.35) and
# the go.etcd.io/etcd/client/v3 it links. Debian 12's etcd-server (3.4.23) is
# older than the 3.5.24 that kubeadm 1.36 accepts at the least.
readonly ETCD_VERSION=3.6.8           # Go module go.etcd.io/etcd/server/v3

CACHE="${KUDO_E2E_CACHE:-$HOME/.cache/kudo-e2e}"

export DEBIAN_FRONTEND=noninteractive
# Static binaries, as Kubernetes' and etcd's own release builds are.
export CGO_ENABLED=0

LOG_PREFIX=install-apiserver
# shellcheck source=test/e2e/install-lib.sh
. "$(dirname "$0")/install-lib.sh"
# shellcheck source=test/e2e/install-kube-lib.sh
. "$(dirname "$0")/install-kube-lib.sh"

install_begin .install-apiserver.lock

# ---------------------------------------------------------------------------
# 1. Debian packages: openssl makes the test certificates and keys.
# ---------------------------------------------------------------------------
install_apt() {
  if command -v openssl >/dev/null; then
    log "openssl already installed"
    return
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openssl >"$WORK/apt.log" 2>&1 \
    || { cat "$WORK/apt.log" >&2; die "apt-get install openssl failed"; }
}

# ---------------------------------------------------------------------------
# 2. kube-apiserver, built as install-kube-lib.sh describes.
# ---------------------------------------------------------------------------
KUBE_APISERVER_BIN="$CACHE/bin/kube-apiserver-v$KUBE_VERSION"

install_kube_apiserver() {
  if [[ -x $KUBE_APISERVER_BIN ]] && [[ "$("$KUBE_APISERVER_BIN" --version 2>/dev/null)" == "Kubernetes v$KUBE_VERSION" ]]; then
    log "kube-apiserver v$KUBE_VERSION already built"
    return
  fi
  # Built beside its final name, so the rename is atomic.
  build_kube_commands "$KUBE_APISERVER_BIN.tmp" kube-apiserver
  mv "$KUBE_APISERVER_BIN.tmp/kube-apiserver" "$KUBE_APISERVER_BIN"
  rmdir "$KUBE_APISERVER_BIN.tmp"
}

# ---------------------------------------------------------------------------
# 3. etcd.
# The etcd binary is the main package at the root of go.etcd.io/etcd/server/v3.
# `go install go.etcd.io/etcd/server/v3@vX` is refused because that go.mod
# replaces its sibling modules (api, client/pkg, client/v3, pkg) with ../
# directories; unlike Kubernetes it requires them at real versions (vX), so a
# throwaway module that requires the server module needs no replaces at all.
# CGO off and -trimpath as etcd's scripts/build_lib.sh; -s -w (no symbols) only
# for size; GitSHA (a git commit the proxy does not give) stays unset.
# ---------------------------------------------------------------------------
ETCD_BIN="$CACHE/bin/etcd-v$ETCD_VERSION"

install_etcd() {
  if [[ -x $ETCD_BIN ]] && "$ETCD_BIN" --version 2>/dev/null | grep -qx "etcd Version: $ETCD_VERSION"; then
    log "etcd v$ETCD_VERSION already built"
    return
  fi
  local dir="$WORK/etcd-build"
  mkdir -p "$dir"
  cd "$dir"
  go mod init kudo.invalid/etcd-build 2>/dev/null
  go mod edit -require="go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  go_build etcd -trimpath -ldflags="-s -w" -o "$ETCD_BIN.tmp" go.etcd.io/etcd/server/v3
  check_pins "$ETCD_BIN.tmp" "$(module_dir "go.etcd.io/etcd/server/v3@v$ETCD_VERSION")/go.mod" "go.etcd.io/etcd/server/v3 v$ETCD_VERSION"
  cd "$WORK"
  mv "$ETCD_BIN.tmp" "$ETCD_BIN"
}

write_env() {
  write_env_file apiserver-env.sh "the API server" KUDO_E2E_KUBE_APISERVER="$KUBE_APISERVER_BIN" KUDO_E2E_ETCD="$ETCD_BIN"
}

t_all=$(now)
timed "apt (openssl)" install_apt
timed "kube-apiserver v$KUBE_VERSION" install_kube_apiserver
timed "etcd v$ETCD_VERSION" install_etcd
# Fail here, not in a test, if either does not run on this machine.
"$KUBE_APISERVER_BIN" --version >/dev/null || die "$KUBE_APISERVER_BIN does not run"
"$ETCD_BIN" --version >/dev/null || die "$ETCD_BIN does not run"
write_env
log "all done in $(awk -v a="$t_all" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'); paths in $CACHE/apiserver-env.sh"

# One line per program: name, then the version it reports itself.
echo "kube-apiserver $("$KUBE_APISERVER_BIN" --version | awk '{print $NF}')"
echo "etcd $("$ETCD_BIN" --version | awk '/^etcd Version:/ {print $NF}')"
