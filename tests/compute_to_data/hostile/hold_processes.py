"""Hostile program: start sleeping children until the kernel refuses one, then hold them all for a while, so that
a job beside it would find no process left if the count were shared.

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Exit status 0 and a log event
starting with "ESCAPED:" only when it started ``target`` processes (default 5000; optional JSON in HOSTILE_ARGS or
under "hostile" in the spec file: {"target": N, "hold_seconds": S}). Contained: a fork is refused; it holds what
it has for ``hold_seconds`` (default 3) and exits with status 3.
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


def log(message: str) -> None:
    print(json.dumps({"event": "log", "message": message}), flush=True)


def main() -> None:
    args = hostile_args()
    target = int(args.get("target", 5000))
    started = 0
    while started < target:
        try:
            pid = os.fork()
        except OSError:
            log(f"contained: fork refused after {started} processes")
            time.sleep(float(args.get("hold_seconds", 3)))
            sys.exit(3)
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        started += 1
    log(f"ESCAPED: started {started} processes")
    sys.exit(0)


main()
