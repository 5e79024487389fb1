"""Hostile program: never finish (a plain sleep, the simplest way past the wall-clock limit).

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Exit status 0 and a log event
starting with "ESCAPED:" only when it is still alive after ``seconds`` (default 60; optional JSON in HOSTILE_ARGS
or under "hostile" in the spec file).
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


def main() -> None:
    seconds = float(hostile_args().get("seconds", 60))
    print(json.dumps({"event": "progress", "fraction": 0.0}), flush=True)
    time.sleep(seconds)
    print(json.dumps({"event": "log", "message": f"ESCAPED: still running after {seconds:g} s"}), flush=True)
    sys.exit(0)


main()
