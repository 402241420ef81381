"""Checks, from inside the cluster, what a user's first call depends on.

Each check prints PASS or FAIL with what it saw; the exit status is 1 when
any failed. Endpoints come from the environment (the smoke-test CronJob
sets them from the rendered config):

  SYNAPSE_URL        in-cluster Synapse (its /health)
  MATRIX_URL         public homeserver URL
  SERVER_NAME        Matrix server name (its /.well-known/matrix documents)
  LIVEKIT_URL        public LiveKit URL (https)
  TURN_HOST, TURN_PORT, TURN_TLS_PORT   coturn
  SMOKE_CA_FILE      CA bundle to trust instead of the system's (tests)
  SMOKE_UDP_TIMEOUT  seconds to wait for each of three STUN answers (default 3)
"""
import json
import os
import socket
import ssl
import struct
import sys
import urllib.parse
import urllib.request

TIMEOUT = 10


def context():
    ca = os.environ.get("SMOKE_CA_FILE")
    return ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()


def get(url):
    req = urllib.request.Request(url, headers={"User-Agent": "kudo-smoke-test"})
    with urllib.request.urlopen(req, timeout=TIMEOUT, context=context() if url.startswith("https:") else None) as r:
        return r.status, dict(r.headers), r.read()


def check_health(base):
    status, _, _ = get(base.rstrip("/") + "/health")
    return status == 200, f"HTTP {status}"


def check_versions(base):
    status, _, body = get(base.rstrip("/") + "/_matrix/client/versions")
    versions = json.loads(body).get("versions", [])
    return status == 200 and bool(versions), f"HTTP {status}, {len(versions)} versions"


def check_wellknown_server(server_name, matrix_url):
    _, _, body = get(f"https://{server_name}/.well-known/matrix/server")
    got = json.loads(body).get("m.server", "")
    want = urllib.parse.urlsplit(matrix_url).hostname
    return got.split(":")[0] == want, f"m.server {got!r}"


def check_wellknown_client(server_name, matrix_url):
    _, headers, body = get(f"https://{server_name}/.well-known/matrix/client")
    base = json.loads(body).get("m.homeserver", {}).get("base_url", "")
    cors = {k.lower(): v for k, v in headers.items()}.get("access-control-allow-origin")
    return base.rstrip("/") == matrix_url.rstrip("/") and cors == "*", f"base_url {base!r}, CORS {cors!r}"


def check_livekit(url):
    status, _, body = get(url.rstrip("/") + "/")
    return status == 200, f"HTTP {status} {body[:20]!r}"


def check_stun(host, port):
    """A STUN Binding request (RFC 5389) over UDP; the answer must echo our transaction id."""
    txid = os.urandom(12)
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + txid
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(float(os.environ.get("SMOKE_UDP_TIMEOUT", "3")))
        for _ in range(3):
            s.sendto(request, (host, port))
            try:
                data, _ = s.recvfrom(2048)
            except socket.timeout:
                continue
            kind = struct.unpack("!H", data[:2])[0]
            return kind == 0x0101 and data[8:20] == txid, f"response type 0x{kind:04x}"
    return False, "no answer"


def check_turns(host, port):
    with socket.create_connection((host, port), timeout=TIMEOUT) as raw:
        with context().wrap_socket(raw, server_hostname=host) as tls:
            cert = tls.getpeercert()
            return True, f"{tls.version()}, certificate for {dict(x[0] for x in cert['subject']).get('commonName', '?')}"


def run(checks):
    failed = 0
    for name, fn, *args in checks:
        try:
            ok, detail = fn(*args)
        except Exception as e:  # a check that cannot even run has failed
            ok, detail = False, f"{type(e).__name__}: {e}"
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)
    return failed


def main():
    e = os.environ
    checks = [
        ("Synapse /health (in cluster)", check_health, e["SYNAPSE_URL"]),
        ("Matrix client API (public)", check_versions, e["MATRIX_URL"]),
        ("well-known server delegation", check_wellknown_server, e["SERVER_NAME"], e["MATRIX_URL"]),
        ("well-known client discovery", check_wellknown_client, e["SERVER_NAME"], e["MATRIX_URL"]),
        ("LiveKit (public)", check_livekit, e["LIVEKIT_URL"]),
        # Without TURN_PORT (LiveKit's own TURN, whose UDP is at each node's address, not at the TURN host): no STUN check.
        ("STUN binding", check_stun, e["TURN_HOST"], int(e.get("TURN_PORT", "0"))),
        ("TURN over TLS", check_turns, e["TURN_HOST"], int(e["TURN_TLS_PORT"])),
    ]
    if "TURN_PORT" not in e:
        checks = [c for c in checks if c[0] != "STUN binding"]
    if e.get("WELL_KNOWN", "true") != "true":
        checks = [c for c in checks if "well-known" not in c[0]]
    failed = run(checks)
    print(f"{len(checks) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
