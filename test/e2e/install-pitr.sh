#!/usr/bin/env bash
# Installs what the point-in-time-recovery test (test/e2e/pitr.e2e.test.ts)
# runs besides PostgreSQL 17 (install-programs.sh installs that):
#   - MinIO, a real S3-compatible object store, to run on loopback;
#   - barman-cloud, the tools CloudNativePG's barman-cloud plugin runs for
#     WAL archiving, base backups, restores and retention, in its own venv.
#
# Only package registries are reachable from our machines: MinIO is compiled
# from the Go module proxy, barman comes from PyPI.
#
# Idempotent and cache-friendly, like install-programs.sh: everything lives
# under $KUDO_E2E_CACHE (default ~/.cache/kudo-e2e), each step is skipped when
# the right version is there, and Go's module and build caches stay at their
# defaults (a wiped KUDO_E2E_CACHE relinks MinIO instead of compiling it).
#
# Output: $KUDO_E2E_CACHE/pitr-env.sh (paths for the test harness) and, on
# stdout, one "name version" line per program.
set -euo pipefail

# MinIO publishes no Go-module versions (its tags are RELEASE.<date>), so the
# proxy serves pseudo-versions; this is the newest it has (the repository's
# last commit, 2026-02-12). SeaweedFS was the alternative: twice the
# dependencies and a replace directive that `go install` refuses.
readonly MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c   # Go module github.com/minio/minio
# The versions plugin-barman-cloud v0.14.0 puts in its sidecar image
# (containers/sidecar-requirements.txt): barman and what its [cloud] extra
# brings for S3. PyPI has no barman 3.20 (3.19.1 is the newest).
readonly BARMAN_VERSION=3.19.1                              # PyPI "barman"
readonly BARMAN_PINS=(
  "barman[cloud]==$BARMAN_VERSION" boto3==1.43.56 botocore==1.43.56 s3transfer==0.19.2
  jmespath==1.1.0 python-dateutil==2.9.0.post0 six==1.17.0 urllib3==2.7.0 psycopg2==2.9.12
)

CACHE="${KUDO_E2E_CACHE:-$HOME/.cache/kudo-e2e}"
PYTHON="${KUDO_E2E_PYTHON:-python3}"

export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1
LOG_PREFIX=install-pitr
# shellcheck source=test/e2e/install-lib.sh
. "$(dirname "$0")/install-lib.sh"

install_begin .install-pitr.lock

# ---------------------------------------------------------------------------
# 1. Debian packages: barman needs psycopg2, which PyPI has only as an sdist
# on Linux, compiled here against Debian's libpq (pg_config).
# ---------------------------------------------------------------------------
install_apt() {
  local wanted=(libpq-dev gcc libc6-dev) missing=() p
  if ! "$PYTHON" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    wanted+=(python3-dev python3-venv)
  fi
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    log "Debian packages already installed"
    return
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$WORK/apt.log" 2>&1 \
    || { cat "$WORK/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
}

# ---------------------------------------------------------------------------
# 2. MinIO. Its go.mod has no replace directives, so `go install` builds it as
# is. CGO off and -trimpath as MinIO's own Makefile; -s -w (no symbols) only
# for size. Built from the proxy it reports "DEVELOPMENT.GOGET" as its
# version, so a stamp file says which one it is.
# ---------------------------------------------------------------------------
MINIO_BIN="$CACHE/bin/minio"

install_minio() {
  local stamp="$CACHE/bin/.minio-version"
  if [[ -x $MINIO_BIN ]] && [[ "$(cat "$stamp" 2>/dev/null)" == "$MINIO_VERSION" ]]; then
    log "MinIO $MINIO_VERSION already installed"
    return
  fi
  # Built into $WORK and moved in whole, so an interrupted build leaves no half binary.
  (cd "$WORK" && CGO_ENABLED=0 GOBIN="$WORK/bin" go install -trimpath -ldflags="-s -w" "github.com/minio/minio@$MINIO_VERSION") \
    2>"$WORK/minio-build.log" || { grep -v '^go: downloading' "$WORK/minio-build.log" >&2; die "minio build failed"; }
  "$WORK/bin/minio" --version >/dev/null || die "the MinIO just built does not run"
  mv "$WORK/bin/minio" "$MINIO_BIN"
  echo "$MINIO_VERSION" >"$stamp"
}

# ---------------------------------------------------------------------------
# 3. barman-cloud in its own venv.
# ---------------------------------------------------------------------------
BARMAN_VENV="$CACHE/barman-$BARMAN_VERSION"

install_barman() {
  if [[ "$("$BARMAN_VENV/bin/barman-cloud-wal-archive" --version 2>/dev/null)" == "barman-cloud-wal-archive $BARMAN_VERSION" ]] \
    && "$BARMAN_VENV/bin/python" -c 'import boto3, psycopg2' 2>/dev/null; then
    log "barman $BARMAN_VERSION already installed"
    return
  fi
  "$PYTHON" -m venv --clear "$BARMAN_VENV"
  # pg_config from Debian's libpq-dev drives the psycopg2 build (not the PG 17
  # tree's, which a wiped cache would take away from under the venv).
  PATH="/usr/bin:$PATH" "$BARMAN_VENV/bin/pip" install -q "${BARMAN_PINS[@]}"
}

check_barman() {
  local tool
  for tool in barman-cloud-wal-archive barman-cloud-wal-restore barman-cloud-backup barman-cloud-restore \
    barman-cloud-backup-list barman-cloud-backup-delete; do
    "$BARMAN_VENV/bin/$tool" --version >/dev/null || die "$BARMAN_VENV/bin/$tool does not run"
  done
}

write_env() {
  write_env_file pitr-env.sh "MinIO and barman-cloud" KUDO_E2E_MINIO="$MINIO_BIN" KUDO_E2E_BARMAN_BIN="$BARMAN_VENV/bin"
}

t_all=$(now)
timed "apt (libpq-dev, gcc)" install_apt
timed "minio $MINIO_VERSION" install_minio
timed "barman $BARMAN_VERSION" install_barman
check_barman
write_env
log "all done in $(awk -v a="$t_all" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'); paths in $CACHE/pitr-env.sh"

# One line per program: name, then its version.
echo "minio $(cat "$CACHE/bin/.minio-version")"
echo "barman $("$BARMAN_VENV/bin/barman-cloud-backup" --version | awk '{print $NF}')"
echo "boto3 $("$BARMAN_VENV/bin/python" -c 'import boto3; print(boto3.__version__)')"
