"""Hostile program: outlive the wall-clock limit (ignore SIGTERM/SIGHUP, leave a double-forked daemon behind).

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Exit status 0 and a log event
starting with "ESCAPED:" only when the main process is still alive after ``seconds`` (default 60; optional JSON in
HOSTILE_ARGS or under "hostile" in the spec file). The daemon closes its stdout/stderr, so whoever checks for
survivors must look at processes, not at pipes; it sleeps ``seconds`` * 3 and then exits 0 silently.
"""

import json
import os
import signal
import sys
import time


def hostile_args() -> dict:
    raw = os.environ.get("HOSTILE_ARGS")
    if raw:
        return json.loads(raw)
    if len(sys.argv) > 1:
        try:
            with open(sys.argv[1]) as fh:
                spec = json.load(fh)
            return spec.get("hostile", {}) if isinstance(spec, dict) else {}
        except (OSError, ValueError):
            return {}
    return {}


def main() -> None:
    seconds = float(hostile_args().get("seconds", 60))
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    if os.fork() == 0:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        time.sleep(seconds * 3)
        os._exit(0)
    print(json.dumps({"event": "progress", "fraction": 0.0}), flush=True)
    time.sleep(seconds)
    print(json.dumps({"event": "log", "message": f"ESCAPED: still running after {seconds:g} s"}), flush=True)
    sys.exit(0)


main()
