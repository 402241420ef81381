#!/usr/bin/env bash
# The benchmark's clients, cached beside the e2e programs (~/.cache/kudo-e2e):
# matrix-nio in a venv (PyPI) and the LiveKit load client built with LiveKit's
# Go SDK (Go module proxy). Prints the two paths as shell assignments.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${KUDO_E2E_CACHE:-$HOME/.cache/kudo-e2e}
NIO_VERSION=0.25.2
venv=$cache/bench-venv-nio-$NIO_VERSION
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import nio' 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "matrix-nio==$NIO_VERSION" >&2
fi
# Rebuilt when its source changes (the hash is in the name).
sum=$(cat "$here/livekit-load/go.mod" "$here/livekit-load/go.sum" "$here/livekit-load/main.go" | sha256sum | cut -c1-12)
bin=$cache/bin/livekit-load-$sum
if [[ ! -x $bin ]]; then
  mkdir -p "$cache/bin"
  (cd "$here/livekit-load" && GOFLAGS=-mod=mod go build -o "$bin.tmp" . >&2 && mv "$bin.tmp" "$bin")
fi
echo "KUDO_BENCH_PYTHON=$venv/bin/python"
echo "KUDO_BENCH_LIVEKIT_LOAD=$bin"
