# Shared by the e2e install scripts (sourced). Set LOG_PREFIX first.

# A dependency that asks for a newer Go must fail loudly rather than make the
# go command download a toolchain from outside the module proxy.
export GOTOOLCHAIN=local

# The repository root and the sourcing script, resolved now: install scripts change
# directory during their builds, after which a relative $0 no longer resolves.
INSTALL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
INSTALL_SCRIPT=$(realpath --relative-to="$INSTALL_ROOT" "$0")

log() { printf '[%s] %s\n' "$LOG_PREFIX" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The start every install script shares: the cache's bin folder, a lock of the
# script's own (install-all.sh runs the scripts side by side and each touches
# its own files; two runs of one script let one install), and a scratch folder
# $WORK removed on exit. Usage: install_begin LOCK_FILE_NAME   ($CACHE set)
install_begin() {
  mkdir -p "$CACHE/bin"
  exec 9>"$CACHE/$1"
  flock 9
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
}

# The env file the tests source to find what a script installed, written whole
# or not at all. Usage: write_env_file FILE_NAME "what it finds" NAME=VALUE...
write_env_file() {
  local f="$CACHE/$1" what=$2 kv
  shift 2
  {
    printf '# Written by %s; source it to find %s.\n' "$INSTALL_SCRIPT" "$what"
    for kv in "$@"; do printf "export %s='%s'\n" "${kv%%=*}" "${kv#*=}"; done
  } >"$f.tmp"
  mv "$f.tmp" "$f"
}

now() { date +%s.%N; }
# Prints how long a step took, so slow cold installs show up in CI logs.
timed() {
  local name=$1 t0
  shift
  t0=$(now)
  "$@"
  log "$name done in $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }')"
}

# Packages of other Debian releases, downloaded (never installed: the machine
# stays Debian 12) with apt's own signature and hash checks, through a private
# package list in $WORK that leaves the machine's apt configuration alone.
# Usage: debian_download DIR PACKAGE/RELEASE...   ($WORK: the caller's scratch folder)
DEBIAN_LISTS_READY=0
debian_apt_options() {
  local root="$WORK/debian-other"
  DEBIAN_APT=(
    -o "Dir::Etc::SourceList=$root/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$root/lists" -o Dir::State::status=/dev/null -o "Dir::Cache::Archives=$root/archives"
    -o Acquire::Languages=none -o APT::Sandbox::User=root
    -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
  )
  if [[ $DEBIAN_LISTS_READY == 0 ]]; then
    mkdir -p "$root/lists/partial" "$root/archives/partial"
    # unstable: coturn and HAProxy at the images' versions, and promtool; trixie (13):
    # a C library new enough for them; bullseye (11): the OpenSSL 1.1 that Redis
    # Ltd's 7.4 build links against.
    cat >"$root/sources.list" <<'LIST'
deb http://deb.debian.org/debian sid main
deb http://deb.debian.org/debian trixie main
deb http://deb.debian.org/debian-security bullseye-security main
LIST
    apt-get "${DEBIAN_APT[@]}" update -qq >"$WORK/apt-other.log" 2>&1 \
      || { cat "$WORK/apt-other.log" >&2; die "apt-get update (other Debian releases) failed"; }
    DEBIAN_LISTS_READY=1
  fi
}

debian_download() {
  local dest=$1
  shift
  debian_apt_options
  mkdir -p "$dest"
  (cd "$dest" && apt-get "${DEBIAN_APT[@]}" download "$@") >"$WORK/apt-download.log" 2>&1 \
    || { cat "$WORK/apt-download.log" >&2; die "apt-get download $* failed"; }
}

# The Debian version a release offers for a package ("" when none).
debian_version_of() {
  debian_apt_options
  apt-cache "${DEBIAN_APT[@]}" madison "$1" | awk -F' *[|] *' -v rel="$2" '$3 ~ "^[^ ]* " rel "/" { print $2; exit }'
}
