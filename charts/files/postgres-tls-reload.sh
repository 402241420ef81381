#!/bin/sh
# Beside PostgreSQL: when cert-manager renews the server's certificate (the
# kubelet then replaces the mounted files), asks the server to reload its
# configuration, which loads the new certificate and key for new connections.
# PostgreSQL reads them only at start and on reload.
#
# Each round touches HEARTBEAT_FILE (if set), which the container's liveness
# probe checks: a loop that hangs is restarted instead of leaving a renewed
# certificate unloaded until the old one expires.
#
# Usage: sh postgres-tls-reload.sh TLS_DIR   (PGHOST: the server's socket folder)
set -eu
dir=$1
interval=${RELOAD_CHECK_SECONDS:-60}
beat() { [ -z "${HEARTBEAT_FILE:-}" ] || touch "$HEARTBEAT_FILE"; }
fingerprint() { cat "$dir/tls.crt" "$dir/tls.key" | cksum; }
last=$(fingerprint)
beat
while sleep "$interval"; do
  beat
  now=$(fingerprint) || continue
  [ "$now" = "$last" ] && continue
  if psql --no-psqlrc -X -q -A -t -d postgres -c 'SELECT pg_reload_conf()' >/dev/null; then
    echo "postgres-tls-reload: the certificate changed; configuration reloaded"
    last=$now
  else
    echo "postgres-tls-reload: the certificate changed, but the reload failed; trying again in ${interval}s" >&2
  fi
done
