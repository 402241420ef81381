#!/usr/bin/env bash
# Builds what the simulated cluster (test/cluster/cluster.ts) runs beside the
# API server and etcd of test/e2e/install-apiserver.sh (run that first):
#
# - kube-controller-manager and kube-scheduler, from the same k8s.io/kubernetes
#   release as kube-apiserver and by the same recipe (test/e2e/install-kube-lib.sh),
#   so Go's build cache already holds nearly every package they need;
# - kwok (sigs.k8s.io/kwok, cmd/kwok): fakes nodes and the lifecycle of pods
#   and other objects through Stage configs; no container ever runs. kwokctl,
#   which would download binaries from release pages we cannot reach, is not
#   used: the harness runs every process itself;
# - argosync (test/cluster/argosync): Argo CD's sync and health engine
#   (github.com/argoproj/gitops-engine) driven as Argo CD drives it, built from
#   the go.mod and go.sum committed beside it.
#
# Only package registries are reachable from our machines, so everything is
# compiled from the Go module proxy. CGO off, as the upstream release builds.
#
# Idempotent and cache-friendly like install-apiserver.sh: the binaries live
# under $KUDO_E2E_CACHE (default ~/.cache/kudo-e2e) and each step is skipped
# when the right version is there (argosync: when a binary built from exactly
# the committed sources is there).
#
# Output: the paths in $KUDO_E2E_CACHE/cluster-env.sh (source it), and on
# stdout one "name version" line per program.
set -euo pipefail

# Pinned versions. Kubernetes (KUBE_VERSION) is pinned in
# test/e2e/install-kube-lib.sh, for every Kubernetes program we build.
# kwok v0.8.0 is built against Kubernetes 1.36 client libraries and supports
# Stages for any resource kind (resourceRef), which the harness needs for
# Ingress and cert-manager objects.
readonly KWOK_VERSION=0.8.0           # Go module sigs.k8s.io/kwok

CACHE="${KUDO_E2E_CACHE:-$HOME/.cache/kudo-e2e}"
HERE="$(cd "$(dirname "$0")" && pwd)"
E2E="$HERE/../e2e"

export CGO_ENABLED=0

LOG_PREFIX=install-cluster
# shellcheck source=test/e2e/install-lib.sh
. "$E2E/install-lib.sh"
# shellcheck source=test/e2e/install-kube-lib.sh
. "$E2E/install-kube-lib.sh"

install_begin .install-cluster.lock

# ---------------------------------------------------------------------------
# 1. kube-controller-manager and kube-scheduler (one go build for both).
# ---------------------------------------------------------------------------
KCM_BIN="$CACHE/bin/kube-controller-manager-v$KUBE_VERSION"
SCHEDULER_BIN="$CACHE/bin/kube-scheduler-v$KUBE_VERSION"

reports_version() {
  [[ -x $1 ]] && [[ "$("$1" --version 2>/dev/null)" == "Kubernetes v$KUBE_VERSION" ]]
}

install_kube_components() {
  if reports_version "$KCM_BIN" && reports_version "$SCHEDULER_BIN"; then
    log "kube-controller-manager and kube-scheduler v$KUBE_VERSION already built"
    return
  fi
  local out="$CACHE/bin/.kube-cluster-build"
  build_kube_commands "$out" kube-controller-manager kube-scheduler
  mv "$out/kube-controller-manager" "$KCM_BIN"
  mv "$out/kube-scheduler" "$SCHEDULER_BIN"
  rmdir "$out"
}

# ---------------------------------------------------------------------------
# 2. kwok. Its go.mod has no replace directives, so `go install module@version`
# builds it with exactly the dependency versions upstream pins. The version
# stamp (pkg/consts.Version 0.8.0, PreRelease GA) is in the source already;
# hack/releases.sh would only repeat it with -X.
# ---------------------------------------------------------------------------
KWOK_BIN="$CACHE/bin/kwok-v$KWOK_VERSION"

install_kwok() {
  if [[ -x $KWOK_BIN ]] && "$KWOK_BIN" --version 2>/dev/null | grep -q "^kwok version v$KWOK_VERSION "; then
    log "kwok v$KWOK_VERSION already built"
    return
  fi
  (cd "$WORK" && GOBIN="$WORK/gobin" go install -trimpath -ldflags="-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION") 2>"$WORK/go-build.log" \
    || { grep -v '^go: downloading' "$WORK/go-build.log" >&2; die "kwok build failed"; }
  mv "$WORK/gobin/kwok" "$KWOK_BIN.tmp"
  mv "$KWOK_BIN.tmp" "$KWOK_BIN"
}

# ---------------------------------------------------------------------------
# 3. argosync, from the sources beside this script. The binary's name carries
# a hash of those sources, so an edit rebuilds it and an unchanged tree never
# does. -mod=readonly: the committed go.sum must already hold every module.
# ---------------------------------------------------------------------------
ARGOSYNC_SRC="$HERE/argosync"
ARGOSYNC_HASH=$(cd "$ARGOSYNC_SRC" && find . -maxdepth 1 -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 \
  | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
ARGOSYNC_BIN="$CACHE/bin/argosync-$ARGOSYNC_HASH"

install_argosync() {
  if [[ -x $ARGOSYNC_BIN ]]; then
    log "argosync $ARGOSYNC_HASH already built"
    return
  fi
  (cd "$ARGOSYNC_SRC" && go build -mod=readonly -trimpath -ldflags="-s -w" -o "$ARGOSYNC_BIN.tmp" .) 2>"$WORK/go-build.log" \
    || { grep -v '^go: downloading' "$WORK/go-build.log" >&2; die "argosync build failed"; }
  # The engine must run on exactly the libraries its release was built and tested with.
  local engine
  engine=$(awk '$1 == "github.com/argoproj/gitops-engine" { print $1 "@" $2; exit }' "$ARGOSYNC_SRC/go.mod")
  check_pins "$ARGOSYNC_BIN.tmp" "$(module_dir "$engine")/go.mod" "${engine/@/ }"
  mv "$ARGOSYNC_BIN.tmp" "$ARGOSYNC_BIN"
  # Builds from older sources are of no further use.
  find "$CACHE/bin" -maxdepth 1 -name 'argosync-*' ! -name "argosync-$ARGOSYNC_HASH" -delete
}

write_env() {
  write_env_file cluster-env.sh "the cluster's programs" \
    KUDO_CLUSTER_KUBE_CONTROLLER_MANAGER="$KCM_BIN" KUDO_CLUSTER_KUBE_SCHEDULER="$SCHEDULER_BIN" \
    KUDO_CLUSTER_KWOK="$KWOK_BIN" KUDO_CLUSTER_ARGOSYNC="$ARGOSYNC_BIN"
}

t_all=$(now)
timed "kube-controller-manager and kube-scheduler v$KUBE_VERSION" install_kube_components
timed "kwok v$KWOK_VERSION" install_kwok
timed "argosync $ARGOSYNC_HASH" install_argosync
# Fail here, not in a test, if any of them does not run on this machine.
for bin in "$KCM_BIN" "$SCHEDULER_BIN" "$KWOK_BIN"; do
  "$bin" --version >/dev/null 2>&1 || die "$bin does not run"
done
"$ARGOSYNC_BIN" --version >/dev/null || die "$ARGOSYNC_BIN does not run"
write_env
log "all done in $(awk -v a="$t_all" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'); paths in $CACHE/cluster-env.sh"

# One line per program: name, then the version it reports itself.
echo "kube-controller-manager $("$KCM_BIN" --version | awk '{print $NF}')"
echo "kube-scheduler $("$SCHEDULER_BIN" --version | awk '{print $NF}')"
echo "kwok $("$KWOK_BIN" --version | awk '{print $3}')"
echo "argosync $ARGOSYNC_HASH ($("$ARGOSYNC_BIN" --version))"
