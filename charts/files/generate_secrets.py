"""Creates every missing secret value of the stack, once.

Reads a plan (JSON) that lists each value, how to make it, and every
(namespace, Secret, key) it must be written to. For each value:

- if no destination holds it, a new one is made from `secrets` (the OS's
  cryptographically secure source) and written to all of them;
- if some destinations hold it, the held value is copied to the others;
- a value that is already set is never changed; destinations that disagree
  are reported and left alone (exit status 1).

Writes are optimistic: a create that finds the Secret already there, or a
patch whose Secret changed since it was read, is retried from a fresh read,
so two generators running at once cannot overwrite each other.

With --restore FILE (what export_secrets.py wrote into a backup), a value no
destination holds is taken from FILE instead of being made, so a stack rebuilt
from its backup keeps its signing key and passwords; a value FILE lacks is
made as usual and named. A destination that already holds a value other than
FILE's is left alone and reported (exit status 1): the restore did not happen.

Usage: python3 generate_secrets.py PLAN.json [--restore FILE]
"""
import base64
import json
import secrets
import string
import sys

from kube import ApiError, Kube

ALPHANUMERIC = string.ascii_letters + string.digits
LABELS = {"app.kubernetes.io/managed-by": "kudo-secrets-generator"}


def make_value(kind):
    """A new value of the given kind, as text."""
    if kind == "token":
        # 256 bits, URL-safe: fits libpq, Redis, YAML and HTTP headers unquoted.
        return secrets.token_urlsafe(32)
    if kind == "livekit-api-key":
        return "API" + "".join(secrets.choice(ALPHANUMERIC) for _ in range(12))
    if kind == "synapse-signing-key":
        # Synapse's key file: "ed25519 <key id> <unpadded base64 of the 32-byte seed>".
        version = "a_" + "".join(secrets.choice(ALPHANUMERIC) for _ in range(4))
        seed = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        return f"ed25519 {version} {seed}\n"
    raise ValueError(f"unknown secret kind {kind!r}")


def b64(text):
    return base64.b64encode(text.encode()).decode()


def unb64(data):
    return base64.b64decode(data).decode()


def load_restore(path):
    """The values of an export_secrets.py file, by name; raises ValueError naming what is wrong."""
    with open(path) as f:
        try:
            doc = json.load(f)
        except ValueError as e:
            raise ValueError(f"{path}: not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != 1:
        raise ValueError(f"{path}: not a secrets export of format 1 (export_secrets.py writes one)")
    values = doc.get("values")
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise ValueError(f"{path}: \"values\" must map each value's name to a string")
    return values


class Generator:
    def __init__(self, kube, log=print, restore=None):
        self.kube = kube
        self.log = log
        self.cache = {}
        # Values from a backup, by name: used instead of new ones.
        self.restore = restore

    def secret(self, namespace, name, fresh=False):
        if fresh or (namespace, name) not in self.cache:
            self.cache[(namespace, name)] = self.kube.get_secret(namespace, name)
        return self.cache[(namespace, name)]

    def held(self, dest, fresh=False):
        s = self.secret(dest["namespace"], dest["secret"], fresh)
        data = (s or {}).get("data") or {}
        return unb64(data[dest["key"]]) if dest["key"] in data else None

    def write(self, dest, value, attempts=5):
        """Sets dest to value unless it holds a value already; returns the value it ends up holding."""
        ns, name, key = dest["namespace"], dest["secret"], dest["key"]
        for attempt in range(attempts):
            fresh = attempt > 0
            current = self.held(dest, fresh)
            if current is not None:
                return current
            s = self.secret(ns, name, fresh)
            try:
                if s is None:
                    self.cache[(ns, name)] = self.kube.create_secret(ns, name, {key: b64(value)}, LABELS)
                else:
                    self.cache[(ns, name)] = self.kube.add_secret_data(s, {key: b64(value)})
                self.log(f"{ns}/{name}: set {key}")
                return value
            except ApiError as e:
                if e.status != 409:
                    raise
        raise RuntimeError(f"{ns}/{name}: kept changing underneath us, gave up after {attempts} attempts")

    def run(self, plan):
        conflicts = 0
        for item in plan["values"]:
            dests = item["destinations"]
            held = {}
            for d in dests:
                v = self.held(d)
                if v is not None:
                    held[where(d)] = v
            if len(set(held.values())) > 1:
                conflicts += 1
                self.log(f"CONFLICT {item['name']}: {', '.join(sorted(held))} hold different values; nothing changed")
                continue
            if held:
                value = next(iter(held.values()))
                if self.restore is not None and item["name"] in self.restore and self.restore[item["name"]] != value:
                    conflicts += 1
                    self.log(f"CONFLICT {item['name']}: {', '.join(sorted(held))} already hold a value other than the backup's; "
                             "nothing changed (delete that key to take the backup's)")
                    continue
            elif self.restore is not None and item["name"] in self.restore:
                value = self.restore[item["name"]]
                self.log(f"{item['name']}: restored from the backup")
            else:
                value = make_value(item["kind"])
                if self.restore is not None:
                    self.log(f"{item['name']}: not in the backup, generated")
            for d in dests:
                if where(d) not in held:
                    if self.write(d, value) != value:
                        conflicts += 1
                        self.log(f"CONFLICT {item['name']}: {where(d)} was set by someone else meanwhile")
            if len(held) == len(dests):
                self.log(f"{item['name']}: present")
        return conflicts


def where(dest):
    return f"{dest['namespace']}/{dest['secret']}[{dest['key']}]"


def main():
    args = sys.argv[1:]
    if len(args) not in (1, 3) or (len(args) == 3 and args[1] != "--restore"):
        sys.exit("usage: generate_secrets.py PLAN.json [--restore FILE]")
    with open(args[0]) as f:
        plan = json.load(f)
    try:
        restore = load_restore(args[2]) if len(args) == 3 else None
    except (OSError, ValueError) as e:
        sys.exit(f"secret generator: cannot restore from the backup, nothing changed: {e}")
    conflicts = Generator(Kube.from_env(), restore=restore).run(plan)
    if conflicts:
        sys.exit(f"{conflicts} secret value(s) disagree between their Secrets; fix them by hand (see above)")
    print("all secret values present")


if __name__ == "__main__":
    try:
        main()
    except ApiError as e:
        sys.exit(f"secret generator failed: {e}")
