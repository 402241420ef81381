"""Registers the Synapse admin account and hands the Kudo app its credentials.

Idempotent: a token already stored in the app's Secret that Synapse still
accepts is kept. Otherwise the admin is registered through Synapse's
shared-secret registration API, or, if the account exists, logged in with
its password. The app's Secret then receives the homeserver URL, the
in-cluster admin URL, the admin token, the registration shared secret (the
app provisions users with it), the LiveKit URL and the LiveKit API key and
secret.

Environment:
  SYNAPSE_URL            in-cluster URL of Synapse (the admin API is not public)
  SERVER_NAME            Matrix server name
  ADMIN_USER             admin localpart
  ADMIN_PASSWORD_FILE    file holding the admin password
  REGISTRATION_SECRET_FILE  file holding registration_shared_secret
  PUBLIC_HOMESERVER_URL, PUBLIC_LIVEKIT_URL   what the app connects to
  LIVEKIT_API_KEY_REF, LIVEKIT_API_SECRET_REF namespace/secret/key of LiveKit's credentials
  APP_SECRET_REF         namespace/secret of the app's Secret
  WAIT_SECONDS           how long to wait for Synapse (default 600)
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.request

from kube import ApiError, Kube

LABELS = {"app.kubernetes.io/managed-by": "kudo-bootstrap"}


def http(method, url, body=None, token=None):
    """(status, JSON body) of an HTTP call; never raises for an HTTP error status."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"{}")
        except ValueError:
            return e.code, {"error": raw.decode(errors="replace")}


def registration_mac(shared_secret, nonce, user, password, admin=True):
    """The HMAC-SHA1 Synapse's /_synapse/admin/v1/register expects."""
    mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
    for part in (nonce, user, password):
        mac.update(part.encode())
        mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    return mac.hexdigest()


class Synapse:
    def __init__(self, base_url):
        self.base = base_url.rstrip("/")

    def wait_healthy(self, seconds):
        deadline = time.monotonic() + seconds
        while True:
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Synapse at {self.base} did not become healthy within {seconds}s")
            time.sleep(3)

    def whoami(self, token):
        status, body = http("GET", self.base + "/_matrix/client/v3/account/whoami", token=token)
        return body.get("user_id") if status == 200 else None

    def register_admin(self, shared_secret, user, password):
        """The new admin's access token, or None if the user already exists."""
        status, body = http("GET", self.base + "/_synapse/admin/v1/register")
        if status != 200:
            raise RuntimeError(f"registration nonce: HTTP {status} {body}")
        nonce = body["nonce"]
        request = {
            "nonce": nonce, "username": user, "password": password, "admin": True,
            "mac": registration_mac(shared_secret, nonce, user, password),
        }
        status, body = http("POST", self.base + "/_synapse/admin/v1/register", request)
        if status == 200:
            return body["access_token"]
        if status == 400 and body.get("errcode") == "M_USER_IN_USE":
            return None
        raise RuntimeError(f"shared-secret registration: HTTP {status} {body}")

    def login(self, user, password):
        request = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
            "initial_device_display_name": "kudo bootstrap",
        }
        status, body = http("POST", self.base + "/_matrix/client/v3/login", request)
        if status != 200:
            raise RuntimeError(f"admin login: HTTP {status} {body.get('errcode')} {body.get('error')}")
        return body["access_token"]


def read_file(path):
    with open(path) as f:
        return f.read().strip()


def secret_value(kube, ref):
    namespace, name, key = ref.split("/", 2)
    s = kube.get_secret(namespace, name)
    data = (s or {}).get("data") or {}
    if key not in data:
        raise RuntimeError(f"{namespace}/{name} has no key {key!r} (yet); is the secret generator done?")
    return base64.b64decode(data[key]).decode()


def ensure_token(synapse, current, mxid, user, password, shared_secret, log=print):
    if current and synapse.whoami(current) == mxid:
        log(f"stored token for {mxid} is valid")
        return current
    token = synapse.register_admin(shared_secret, user, password)
    if token is not None:
        log(f"registered {mxid}")
        return token
    log(f"{mxid} exists; logging in")
    return synapse.login(user, password)


def main():
    env = os.environ
    kube = Kube.from_env()
    synapse = Synapse(env["SYNAPSE_URL"])
    user = env["ADMIN_USER"]
    mxid = f"@{user}:{env['SERVER_NAME']}"
    app_namespace, app_secret = env["APP_SECRET_REF"].split("/", 1)

    synapse.wait_healthy(int(env.get("WAIT_SECONDS", "600")))
    existing = kube.get_secret(app_namespace, app_secret)
    data = (existing or {}).get("data") or {}
    current = base64.b64decode(data["MATRIX_ADMIN_TOKEN"]).decode() if "MATRIX_ADMIN_TOKEN" in data else None
    registration_secret = read_file(env["REGISTRATION_SECRET_FILE"])
    token = ensure_token(synapse, current, mxid, user, read_file(env["ADMIN_PASSWORD_FILE"]), registration_secret)
    values = {
        "MATRIX_HOMESERVER_URL": env["PUBLIC_HOMESERVER_URL"],
        # Inside the cluster the app calls the admin API (and shared-secret
        # registration) on Synapse's Service, where a NetworkPolicy admits its
        # namespace; an app outside (app.outsideCluster) gets the public URL the
        # allow-listed admin Ingress serves.
        "MATRIX_ADMIN_URL": env.get("APP_ADMIN_URL") or env["SYNAPSE_URL"],
        "MATRIX_REGISTRATION_SHARED_SECRET": registration_secret,
        "MATRIX_SERVER_NAME": env["SERVER_NAME"],
        "MATRIX_ADMIN_USER": mxid,
        "MATRIX_ADMIN_TOKEN": token,
        "LIVEKIT_URL": env["PUBLIC_LIVEKIT_URL"],
        "LIVEKIT_API_KEY": secret_value(kube, env["LIVEKIT_API_KEY_REF"]),
        "LIVEKIT_API_SECRET": secret_value(kube, env["LIVEKIT_API_SECRET_REF"]),
    }
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    if existing is None:
        kube.create_secret(app_namespace, app_secret, encoded, LABELS)
    elif data != {**data, **encoded}:
        kube.request(
            "PATCH", f"/api/v1/namespaces/{app_namespace}/secrets/{app_secret}",
            {"data": encoded}, content_type="application/merge-patch+json",
        )
    print(f"{app_namespace}/{app_secret} holds the app's credentials")


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, ApiError) as e:
        sys.exit(f"bootstrap failed: {e}")
