"""Waits until the database's schema is the one this image's Synapse expects.

The migration Job (update_synapse_database) brings the schema up to date;
every Synapse pod runs this first, so that no process of a new version starts
before that Job is done: the main process would otherwise migrate the
schema itself, beside the Job and under its startup probe. It only reads:
the schema version and the applied delta files, as Synapse itself compares
them when a worker starts (synapse/storage/prepare_database.py). It never
gives up: a long migration is waited for, however long it takes.

A database that PostgreSQL's init script marked as waiting for a restore (a new
major's data directory beside an older one: docs/operations.md, "PostgreSQL 17 → 18") is
waited on first, whatever its schema: the migration Job's first step runs this
with --restore-only, so it neither migrates nor lets Synapse serve an empty
database before the dump is back.

Usage: wait_for_schema.py [--restore-only] HOMESERVER_YAML   (libpq's password from PGPASSFILE)
"""

import importlib.util
import os
import sys
import time

import psycopg2
import yaml

POLL_SECONDS = 5
# The mark postgres-init.sh puts on the database, as its comment; restore-postgres.sh clears it.
RESTORE_MARK = "kudo: awaiting restore"
# The restore step does not count these sessions as Synapse's (they only read, a moment every POLL_SECONDS).
APPLICATION_NAME = "kudo-wait-for-schema"
# Keys of homeserver.yaml's database.args that are Synapse's, not libpq's.
NOT_LIBPQ = {"cp_min", "cp_max", "cp_reconnect", "cp_openfun", "cp_noisy"}


def load_schema_module():
    """synapse/storage/schema/__init__.py alone (constants, no imports): importing it as part of
    synapse.storage would load the whole data store, ten times the memory."""
    package = importlib.util.find_spec("synapse").submodule_search_locations[0]
    path = os.path.join(package, "storage", "schema", "__init__.py")
    spec = importlib.util.spec_from_file_location("synapse_schema_constants", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


schema = load_schema_module()
SCHEMA_DIR = os.path.dirname(schema.__file__)


def expected_deltas(version):
    """The delta files of `version` a PostgreSQL database must have applied, as Synapse names them."""
    files = set()
    for database in ("common", "main", "state"):
        folder = os.path.join(SCHEMA_DIR, database, "delta", str(version))
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            root, ext = os.path.splitext(name)
            if ext in (".py", ".sql") or (ext == ".postgres" and root.endswith(".sql")):
                files.add(f"{version}/{name}")
    return files


def awaiting_restore(cur):
    """Why the database waits for a restore, or None."""
    cur.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()")
    comment = cur.fetchone()[0]
    return f"the database awaits its restore: {comment}" if comment and comment.startswith(RESTORE_MARK) else None


def missing(cur):
    """Why the schema is not current yet, or None when it is."""
    why = awaiting_restore(cur)
    if why is not None:
        return why
    cur.execute("SELECT to_regclass('schema_version') IS NOT NULL")
    if not cur.fetchone()[0]:
        return "the database has no schema yet"
    cur.execute("SELECT version, upgraded FROM schema_version")
    version, upgraded = cur.fetchone()
    want = schema.SCHEMA_VERSION
    if version < want:
        return f"schema version {version}, this Synapse needs {want}"
    # A newer schema is Synapse's to judge (it refuses one too new for it); a full schema of this
    # version has no deltas of its own to apply.
    if version > want or not upgraded:
        return None
    cur.execute("SELECT file FROM applied_schema_deltas WHERE version = %s", (want,))
    absent = expected_deltas(want) - {row[0] for row in cur.fetchall()}
    return f"delta files not applied yet: {', '.join(sorted(absent))}" if absent else None


def main(config_file, restore_only):
    with open(config_file) as f:
        args = yaml.safe_load(f)["database"]["args"]
    libpq = {k: v for k, v in args.items() if k not in NOT_LIBPQ}
    libpq["application_name"] = APPLICATION_NAME
    check = awaiting_restore if restore_only else missing
    said = None
    while True:
        try:
            with psycopg2.connect(**libpq) as conn, conn.cursor() as cur:
                why = check(cur)
            conn.close()
        except psycopg2.Error as e:
            why = f"cannot read the database: {str(e).strip()}"
        if why is None:
            print("the database is not waiting for a restore" if restore_only else f"schema version {schema.SCHEMA_VERSION} is current", flush=True)
            return
        if why != said:
            print(f"waiting: {why}" if restore_only else f"waiting for the migration Job: {why}", flush=True)
            said = why
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--restore-only":
        main(sys.argv[2], restore_only=True)
    elif len(sys.argv) == 2 and not sys.argv[1].startswith("-"):
        main(sys.argv[1], restore_only=False)
    else:
        sys.exit("usage: wait_for_schema.py [--restore-only] HOMESERVER_YAML")
