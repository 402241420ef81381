# Shared by the install scripts that build Kubernetes commands from the Go
# module proxy (test/e2e/install-apiserver.sh: kube-apiserver;
# test/cluster/install-cluster.sh: kube-controller-manager, kube-scheduler).
# Sourced after install-lib.sh, with WORK (a scratch directory) set.
#
# Every command is built from the same k8s.io/kubernetes release by the same
# recipe, so they share Go's build cache: the second and later commands
# compile little more than their own packages.

# The one Kubernetes release every program we build comes from.
# Kubernetes 1.36 is the newest release the manifests target (the unit tests
# validate them against the 1.28 and 1.36 schemas), so the API server that
# admits them is 1.36's newest patch. The proxy has 1.37 too, but admitting with
# a newer server than any we deploy to could hide a removal or accept a field
# that 1.36 rejects.
readonly KUBE_VERSION=1.36.3          # Go module k8s.io/kubernetes

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
# build_kube_commands OUTDIR COMMAND...: builds k8s.io/kubernetes/cmd/COMMAND
# for each COMMAND into OUTDIR/COMMAND (OUTDIR is emptied first).
#
# `go install k8s.io/kubernetes/cmd/<command>@vX` is refused: the module's
# go.mod requires its staging modules (k8s.io/api, k8s.io/apiserver, ...) at
# v0.0.0 and replaces them with ./staging/src/k8s.io/*, directories that are
# nested modules and so are left out of the module's zip. Those staging trees
# are published as modules of their own, tagged v0.X.Y for Kubernetes v1.X.Y
# from the same commit, so a throwaway module that requires k8s.io/kubernetes
# and replaces each staging module with its published v0.X.Y builds the same
# code. A staging module the proxy does not serve at that version (for
# v1.36.3 only k8s.io/sample-cli-plugin, an example that none of the commands
# we build imports) is replaced with an empty stub module instead: were it
# ever linked, the check after the build would fail. (Ask for the exact version: the
# proxy's version lists, `go list -m -versions`, leave out versions it serves,
# e.g. k8s.io/sample-apiserver v0.36.3.)
# Flags follow hack/lib/golang.sh for a release build (CGO off, -trimpath,
# -s -w, tags selinux,notest,grpcnotrace) and hack/lib/version.sh for the
# version stamp; the proxy gives no git commit, so gitCommit stays unset.
# ---------------------------------------------------------------------------
build_kube_commands() {
  local out=$1
  shift
  local kdir mod cmd dir="$WORK/kube-build" staging="0.${KUBE_VERSION#1.}"
  kdir=$(module_dir "k8s.io/kubernetes@v$KUBE_VERSION")
  [[ -f $kdir/go.mod ]] || die "could not download k8s.io/kubernetes@v$KUBE_VERSION"
  rm -rf "$dir"
  mkdir -p "$dir"
  cd "$dir"
  go mod init kudo.invalid/kube-build 2>/dev/null
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
  # One go command for all of them: the packages they share compile once.
  rm -rf "$out"
  mkdir -p "$out"
  go_build "$*" -trimpath -tags=selinux,notest,grpcnotrace -ldflags="$ldflags" \
    -o "$out/" "${@/#/k8s.io/kubernetes/cmd/}"

  for cmd in "$@"; do
    # Every staging module linked in must be the published v0.X.Y (a stub shows
    # as "(devel)"), and every other module at the version k8s.io/kubernetes
    # pins; otherwise this is not the code upstream releases and tests.
    go version -m "$out/$cmd" >"$WORK/buildinfo.txt"
    if awk -v want="v$staging" '$1 == "=>" && $2 ~ /k8s\.io\// && $3 != want { print; bad = 1 } END { exit !bad }' "$WORK/buildinfo.txt" >&2; then
      die "$cmd: staging modules linked at other versions than v$staging (above)"
    fi
    check_pins "$out/$cmd" "$kdir/go.mod" "k8s.io/kubernetes v$KUBE_VERSION"
  done
  cd "$WORK"
}
