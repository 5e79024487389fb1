"""Hostile program: allocate (and touch) memory until something breaks.

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Exit status 0 and a log event
starting with "ESCAPED:" only when it held ``target_bytes`` (default 8 GiB; optional JSON in HOSTILE_ARGS or under
"hostile" in the spec file). Contained: the MemoryError traceback ends it.
"""

import json
import os
import sys


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
    target = int(hostile_args().get("target_bytes", 8 << 30))
    chunk = 64 << 20
    hoard = []
    while len(hoard) * chunk < target:
        hoard.append(bytearray(b"\xa5") * chunk)  # written, so the pages are really allocated
    print(json.dumps({"event": "log", "message": f"ESCAPED: held {len(hoard) * chunk} bytes"}), flush=True)
    sys.exit(0)


main()
