#!/bin/sh
# Starts coturn with the rendered turnserver.conf plus what only the node
# knows at start: the shared secret and its own addresses. The secret goes
# into a file in memory, never onto the command line.
set -eu
umask 077
conf=/run/coturn/turnserver.conf
public=$(cat /run/coturn/public-ip)
cp /etc/coturn/turnserver.conf "$conf"
{
  printf 'static-auth-secret=%s\n' "$(cat /secrets/turn/shared_secret)"
  printf 'external-ip=%s/%s\n' "$public" "$NODE_IP"
  printf 'listening-ip=%s\n' "$NODE_IP"
  printf 'relay-ip=%s\n' "$NODE_IP"
} >> "$conf"

turnserver -c "$conf" &
pid=$!
stopping= sleeper=
trap 'stopping=1; kill -TERM "$pid" $sleeper 2>/dev/null' TERM INT

# coturn reads its certificate only at start and on SIGUSR2; cert-manager
# renews it in place, so watch it and ask for a reload when it changes.
cert=/tls/tls.crt
last=$(cksum < "$cert" 2>/dev/null || echo none)
while [ -z "$stopping" ] && kill -0 "$pid" 2>/dev/null; do
  sleep 60 &
  sleeper=$!
  wait $sleeper || true
  sleeper=
  now=$(cksum < "$cert" 2>/dev/null || echo none)
  if [ -z "$stopping" ] && [ "$now" != "$last" ]; then
    last=$now
    echo "certificate changed; reloading"
    kill -USR2 "$pid" 2>/dev/null || true
  fi
done
wait "$pid"
