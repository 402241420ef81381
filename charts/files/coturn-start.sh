#!/bin/sh
# Starts coturn with the rendered turnserver.conf plus what only the node
# knows at start: the shared secret and its own addresses, and the TLS
# certificate once cert-manager has issued it. The secret goes into a file in
# memory, never onto the command line. A second secret, while the first is
# rotated, is a second static-auth-secret line: coturn accepts credentials
# made with either (docs/operations.md, "Rotating secrets").
#
# TURN over UDP and TCP does not need the certificate, so coturn starts
# without it (a first issuance can take minutes, or fail until DNS and port 80
# are right) and is restarted with TLS when the certificate appears; later
# renewals are reloaded in place (SIGUSR2).
set -eu
umask 077
conf=/run/coturn/turnserver.conf
cert=/tls/tls.crt
key=/tls/tls.key
public=$(cat /run/coturn/public-ip)
# A node with a public IPv6 too: the lookup wrote "<IPv4>,<IPv6>". coturn listens and
# relays on that IPv6 as well (it is the node's own, so no external-ip mapping), and
# gives each client a relay address of the family it asks for.
public6=
case $public in *,*) public6=${public#*,} public=${public%%,*} ;; esac

has_cert() { [ -s "$cert" ] && [ -s "$key" ]; }

start() {
  cp /etc/coturn/turnserver.conf "$conf"
  {
    printf 'static-auth-secret=%s\n' "$(cat /secrets/turn/shared_secret)"
    if [ -s /secrets/turn/second_shared_secret ]; then printf 'static-auth-secret=%s\n' "$(cat /secrets/turn/second_shared_secret)"; fi
    printf 'external-ip=%s/%s\n' "$public" "$NODE_IP"
    printf 'listening-ip=%s\n' "$NODE_IP"
    printf 'relay-ip=%s\n' "$NODE_IP"
    if [ -n "$public6" ]; then printf 'listening-ip=%s\nrelay-ip=%s\n' "$public6" "$public6"; fi
    if has_cert; then printf 'cert=%s\npkey=%s\n' "$cert" "$key"; fi
  } >> "$conf"
  if ! has_cert; then echo "no certificate at $cert yet: TURN over TLS stays off until cert-manager has issued it"; fi
  turnserver -c "$conf" &
  pid=$!
}

start
stopping= sleeper=
trap 'stopping=1; kill -TERM "$pid" $sleeper 2>/dev/null' TERM INT

# coturn reads its certificate only at start and on SIGUSR2; watch the mounted
# Secret (the kubelet updates it in place) and act when it changes.
last=$(cksum 2>/dev/null < "$cert" || echo none)
while [ -z "$stopping" ] && kill -0 "$pid" 2>/dev/null; do
  sleep "${CERT_CHECK_SECONDS:-60}" &
  sleeper=$!
  wait $sleeper || true
  sleeper=
  now=$(cksum 2>/dev/null < "$cert" || echo none)
  if [ -z "$stopping" ] && [ "$now" != "$last" ]; then
    if [ "$last" = none ]; then
      echo "certificate issued; restarting with TLS"
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" || true
      start
    else
      echo "certificate changed; reloading"
      kill -USR2 "$pid" 2>/dev/null || true
    fi
    last=$now
  fi
done
wait "$pid"
