"""A minimal Kubernetes API client for the stack's Jobs, on Python's standard library.

In a pod it uses the mounted ServiceAccount token and CA. KUBE_API_URL,
KUBE_TOKEN_FILE and KUBE_CA_FILE point it elsewhere (tests use a local
API server).
"""
import json
import os
import ssl
import urllib.error
import urllib.request

SA_DIR = os.environ.get("SA_DIR", "/var/run/secrets/kubernetes.io/serviceaccount")


class ApiError(Exception):
    """An error answer of the API (status is its HTTP status), or no answer at all (status 0)."""

    def __init__(self, status, message):
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status


class Kube:
    def __init__(self, base_url, token=None, cafile=None):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.context = ssl.create_default_context(cafile=cafile) if base_url.startswith("https:") else None

    @classmethod
    def from_env(cls):
        url = os.environ.get("KUBE_API_URL")
        if not url:
            host = os.environ["KUBERNETES_SERVICE_HOST"]
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            url = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        token_file = os.environ.get("KUBE_TOKEN_FILE", os.path.join(SA_DIR, "token"))
        token = None
        if os.path.exists(token_file):
            with open(token_file) as f:
                token = f.read().strip()
        cafile = os.environ.get("KUBE_CA_FILE", os.path.join(SA_DIR, "ca.crt"))
        return cls(url, token, cafile if os.path.exists(cafile) else None)

    def request(self, method, path, body=None, content_type="application/json"):
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("message", detail)
            except ValueError:
                pass
            raise ApiError(e.code, detail) from None
        except urllib.error.URLError as e:
            raise ApiError(0, f"cannot reach the Kubernetes API at {self.base_url}: {e.reason}") from None

    # Secrets

    def get_secret(self, namespace, name):
        """The Secret, or None when it does not exist."""
        try:
            return self.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def create_secret(self, namespace, name, data, labels):
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "type": "Opaque",
            "data": data,
        }
        return self.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body)

    def add_secret_data(self, secret, data):
        """Adds keys to an existing Secret; fails with 409 if it changed since it was read."""
        meta = secret["metadata"]
        body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "data": data}
        return self.request(
            "PATCH",
            f"/api/v1/namespaces/{meta['namespace']}/secrets/{meta['name']}",
            body,
            content_type="application/merge-patch+json",
        )

    def get_node(self, name):
        return self.request("GET", f"/api/v1/nodes/{name}")
