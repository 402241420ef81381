"""Writes every secret value the stack generated into one file, for the backup.

Reads the generator's plan (JSON: each value's name and the (namespace,
Secret, key) destinations it lives in) and writes OUT as JSON:

    {"format": 1, "values": {"<value name>": "<value>", ...}}

keyed by the value's name (signingKey, macaroonSecretKey, ...), not by where
it lives, so a restore into Secrets named differently still finds it. The
file goes to an in-memory volume; the next step stores it, encrypted, in the
restic repositories, and generate_secrets.py --restore puts it back.

Only reads (GET on the named Secrets). A value whose destinations disagree is
an error (exit 1), as it is for the generator: a backup must not pick one
silently. A value no Secret holds yet is left out and named.

Usage: python3 export_secrets.py PLAN.json OUT
"""
import base64
import json
import os
import sys

from kube import ApiError, Kube

FORMAT = 1


def export(kube, plan, log=print):
    """(values by name, problems): the held value of each planned value."""
    values, problems, secrets = {}, [], {}
    for item in plan["values"]:
        held = {}
        for d in item["destinations"]:
            key = (d["namespace"], d["secret"])
            if key not in secrets:
                secrets[key] = kube.get_secret(*key)
            data = (secrets[key] or {}).get("data") or {}
            if d["key"] in data:
                held[f"{d['namespace']}/{d['secret']}[{d['key']}]"] = base64.b64decode(data[d["key"]]).decode()
        if not held:
            log(f"{item['name']}: no Secret holds it yet, not exported")
        elif len(set(held.values())) > 1:
            problems.append(f"{item['name']}: {', '.join(sorted(held))} hold different values")
        else:
            values[item["name"]] = next(iter(held.values()))
    return values, problems


def write_private(path, text):
    """Writes text to path readable by its owner only, through a temporary file renamed into place."""
    partial = path + ".partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: export_secrets.py PLAN.json OUT")
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    values, problems = export(Kube.from_env(), plan)
    if problems:
        for p in problems:
            print(f"CONFLICT {p}", file=sys.stderr)
        sys.exit(f"{len(problems)} secret value(s) disagree between their Secrets; nothing exported (fix them, see above)")
    write_private(sys.argv[2], json.dumps({"format": FORMAT, "values": values}, indent=2, sort_keys=True) + "\n")
    print(f"exported {len(values)} of {len(plan['values'])} secret values: {', '.join(sorted(values))}")


if __name__ == "__main__":
    try:
        main()
    except ApiError as e:
        sys.exit(f"secret export failed: {e}")
