"""Hostile program: a fork bomb (every process forks as fast as it can).

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Exit status 0 and a log event
starting with "ESCAPED:" only when the main process alone started ``target`` processes (default 5000; optional
JSON in HOSTILE_ARGS or under "hostile" in the spec file: {"target": N}). When fork fails it lets the
BlockingIOError ("Resource temporarily unavailable") end it with a traceback.
"""

import json
import os
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


def child() -> None:
    """Keeps forking until the end of time; never prints, never exits 0."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if os.fork() == 0:
                continue
        except OSError:
            time.sleep(0.05)
    os._exit(1)


def main() -> None:
    target = int(hostile_args().get("target", 5000))
    started = 0
    while started < target:
        if os.fork() == 0:  # a failing fork raises BlockingIOError: the traceback is the evidence
            child()
        started += 1
    print(json.dumps({"event": "log", "message": f"ESCAPED: started {started} processes"}), flush=True)
    sys.exit(0)


main()
