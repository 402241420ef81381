"""
checkov over several renders, each scanned alone, for the price of one start.

A render must be scanned alone: checkov's graph checks (every pod selected by a
NetworkPolicy, RBAC escalation, ...) join the objects of everything it reads,
and would join renders. One checkov run per render costs its start each time
(about 3 s of imports, for about 1 s of scanning), and one run over them all
grows with the square of the objects (minutes for the matrix). So this imports
checkov once and forks a child per render, a few at a time, each running
checkov's own command line (checkov.main.Checkov, as bin/checkov does) with
its stdout in a file.

Usage: python checkov-each.py JOBS OUT_DIR -- CHECKOV_ARGS... -- NAME=FILE[,FILE...]...
Writes OUT_DIR/NAME.json (checkov's stdout) and OUT_DIR/NAME.stderr, and prints
a JSON object mapping each NAME to checkov's exit status.
"""

import json
import os
import sys
import traceback
import warnings

# One render at a time in each child, the children being the parallelism (checkov would otherwise fork a pool per
# render to parse its files, and wait on it). Read when checkov is imported.
os.environ["CHECKOV_PARALLELIZATION_TYPE"] = "none"

from checkov.main import Checkov  # noqa: E402


def scan(argv: list[str], out: str, err: str) -> None:
    """In the child: checkov's command line, as bin/checkov runs it, with stdout and stderr in files."""
    for fd, file in ((1, out), (2, err)):
        f = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    code = 2
    try:
        sys.argv = ["checkov", *argv]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=SyntaxWarning)
            code = Checkov(argv).run() or 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 2
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    jobs, out_dir, sep, *rest = sys.argv[1:]
    assert sep == "--", __doc__
    split = rest.index("--")
    args, renders = rest[:split], [r.split("=", 1) for r in rest[split + 1 :]]
    status: dict[str, int] = {}
    running: dict[int, str] = {}

    def reap() -> None:
        pid, wait_status = os.wait()
        status[running.pop(pid)] = os.waitstatus_to_exitcode(wait_status)

    for name, files in renders:
        while len(running) >= int(jobs):
            reap()
        argv = [*(a for f in files.split(",") for a in ("-f", f)), *args]
        pid = os.fork()
        if pid == 0:
            scan(argv, os.path.join(out_dir, f"{name}.json"), os.path.join(out_dir, f"{name}.stderr"))
        running[pid] = name
    while running:
        reap()
    print(json.dumps(status))


if __name__ == "__main__":
    main()
