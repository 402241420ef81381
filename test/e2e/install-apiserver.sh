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

# Pinned versions.
# Kubernetes 1.36 is the newest release the manifests target (the unit tests
# validate them against the 1.28 and 1.36 schemas), so the API server that
# admits them is 1.36's newest patch. The proxy has 1.37 too, but admitting with
# a newer server than any we deploy to could hide a removal or accept a field
# that 1.36 rejects.
readonly KUBE_VERSION=1.36.3          # Go module k8s.io/kubernetes
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

mkdir -p "$CACHE/bin"
# Parallel test runs may call this script at the same time; let one install.
# (A lock of its own: install-programs.sh may run at the same time and takes
# $CACHE/.install.lock, and the two touch different files.)
exec 9>"$CACHE/.install-apiserver.lock"
flock 9

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

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

# Prints the directory of module@version in the module cache, downloading it.
module_dir() {
  (cd "$WORK" && go mod download -json "$1") | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

# Runs a go build in the current directory; on failure shows its log (minus
# the download chatter) and stops.
go_build() {
  local what=$1
  shift
  # -mod=mod: our module's go.sum starts empty and the go command fills it in,
  # checking each module against the checksum database.
  go build -mod=mod "$@" 2>"$WORK/go-build.log" \
    || { grep -v '^go: downloading' "$WORK/go-build.log" >&2; die "$what build failed"; }
}

# Fails if a module linked into binary $1 is at another version than the
# go.mod $2 (of module $3) requires: our throwaway module must select exactly
# the versions upstream builds and tests with.
check_pins() {
  go version -m "$1" | awk '$1 == "dep" { print $2, $3 }' | LC_ALL=C sort >"$WORK/linked.txt"
  awk '/^require \(/ { r = 1; next } r && /^\)/ { r = 0 } r && NF >= 2 { print $1, $2 }' "$2" \
    | LC_ALL=C sort | LC_ALL=C join - "$WORK/linked.txt" | awk '$2 != $3' >"$WORK/skew.txt"
  if [[ -s $WORK/skew.txt ]]; then
    cat "$WORK/skew.txt" >&2
    die "modules linked at other versions than $3 pins (module, pinned, linked)"
  fi
}

# ---------------------------------------------------------------------------
# 2. kube-apiserver.
# `go install k8s.io/kubernetes/cmd/kube-apiserver@vX` is refused: the module's
# go.mod requires its staging modules (k8s.io/api, k8s.io/apiserver, ...) at
# v0.0.0 and replaces them with ./staging/src/k8s.io/*, directories that are
# nested modules and so are left out of the module's zip. Those staging trees
# are published as modules of their own, tagged v0.X.Y for Kubernetes v1.X.Y
# from the same commit, so a throwaway module that requires k8s.io/kubernetes
# and replaces each staging module with its published v0.X.Y builds the same
# code. A staging module the proxy does not serve at that version (for
# v1.36.3 only k8s.io/sample-cli-plugin, an example that kube-apiserver never
# imports) is replaced with an empty stub module instead: were it ever linked,
# the check after the build would fail. (Ask for the exact version: the
# proxy's version lists, `go list -m -versions`, leave out versions it serves,
# e.g. k8s.io/sample-apiserver v0.36.3.)
# Flags follow hack/lib/golang.sh for a release build (CGO off, -trimpath,
# -s -w, tags selinux,notest,grpcnotrace) and hack/lib/version.sh for the
# version stamp; the proxy gives no git commit, so gitCommit stays unset.
# ---------------------------------------------------------------------------
KUBE_APISERVER_BIN="$CACHE/bin/kube-apiserver-v$KUBE_VERSION"

install_kube_apiserver() {
  if [[ -x $KUBE_APISERVER_BIN ]] && [[ "$("$KUBE_APISERVER_BIN" --version 2>/dev/null)" == "Kubernetes v$KUBE_VERSION" ]]; then
    log "kube-apiserver v$KUBE_VERSION already built"
    return
  fi
  local kdir mod dir="$WORK/kube-apiserver-build" staging="0.${KUBE_VERSION#1.}"
  kdir=$(module_dir "k8s.io/kubernetes@v$KUBE_VERSION")
  [[ -f $kdir/go.mod ]] || die "could not download k8s.io/kubernetes@v$KUBE_VERSION"
  mkdir -p "$dir"
  cd "$dir"
  go mod init kudo.invalid/kube-apiserver-build 2>/dev/null
  # Same language version and GODEBUG defaults as Kubernetes' own go.mod (only
  # the main module's go and godebug lines count).
  go mod edit -go="$(awk '$1 == "go" { print $2; exit }' "$kdir/go.mod")"
  local godebug
  godebug=$(awk '$1 == "godebug" { print $2; exit }' "$kdir/go.mod")
  if [[ -n $godebug ]]; then go mod edit -godebug="$godebug"; fi
  go mod edit -require="k8s.io/kubernetes@v$KUBE_VERSION"

  # Every module that k8s.io/kubernetes replaces with a staging directory.
  local -a mods
  mapfile -t mods < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\/src\// { print $1 }' "$kdir/go.mod")
  ((${#mods[@]} > 20)) || die "found only ${#mods[@]} staging modules in k8s.io/kubernetes' go.mod"
  # One go command downloads them all; those it cannot get carry an "Error".
  (cd "$WORK" && go mod download -json "${mods[@]/%/@v$staging}" >"$WORK/staging.json" 2>/dev/null) || true
  for mod in "${mods[@]}"; do
    if awk -v want="\"$mod\"," '$1 == "\"Path\":" && $2 == want { p = 1 } p && $1 == "\"Error\":" { bad = 1 } p && /^}/ { exit } END { exit !(p && !bad) }' "$WORK/staging.json"; then
      go mod edit -replace="$mod=$mod@v$staging"
    else
      log "$mod v$staging is not on the module proxy; replacing it with an empty stub"
      mkdir -p "stub/$mod"
      printf 'module %s\n' "$mod" >"stub/$mod/go.mod"
      go mod edit -replace="$mod=./stub/$mod"
    fi
  done

  local pkg ldflags="-s -w" date
  # The module's publication time stands in for the build date: reproducible.
  date=$(cd "$WORK" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "k8s.io/kubernetes@v$KUBE_VERSION")
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X $pkg.gitVersion=v$KUBE_VERSION -X $pkg.gitMajor=${KUBE_VERSION%%.*}"
    ldflags+=" -X $pkg.gitMinor=$(cut -d. -f2 <<<"$KUBE_VERSION") -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  go_build kube-apiserver -trimpath -tags=selinux,notest,grpcnotrace -ldflags="$ldflags" \
    -o "$KUBE_APISERVER_BIN.tmp" k8s.io/kubernetes/cmd/kube-apiserver

  # Every staging module linked in must be the published v0.X.Y (a stub shows
  # as "(devel)"), and every other module at the version k8s.io/kubernetes
  # pins; otherwise this is not the code upstream releases and tests.
  go version -m "$KUBE_APISERVER_BIN.tmp" >"$WORK/buildinfo.txt"
  if awk -v want="v$staging" '$1 == "=>" && $2 ~ /k8s\.io\// && $3 != want { print; bad = 1 } END { exit !bad }' "$WORK/buildinfo.txt" >&2; then
    die "staging modules linked at other versions than v$staging (above)"
  fi
  check_pins "$KUBE_APISERVER_BIN.tmp" "$kdir/go.mod" "k8s.io/kubernetes v$KUBE_VERSION"
  cd "$WORK"
  mv "$KUBE_APISERVER_BIN.tmp" "$KUBE_APISERVER_BIN"
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
  local f="$CACHE/apiserver-env.sh"
  cat >"$f.tmp" <<EOF
# Written by test/e2e/install-apiserver.sh; source it to find the API server.
export KUDO_E2E_KUBE_APISERVER='$KUBE_APISERVER_BIN'
export KUDO_E2E_ETCD='$ETCD_BIN'
EOF
  mv "$f.tmp" "$f"
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
