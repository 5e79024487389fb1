"""Hostile program: burn CPU in several children, each under RLIMIT_CPU (which is per process).

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Exit status 0 and a log event
starting with "ESCAPED:" only when the children together burnt ``target_seconds`` of CPU (default 60; optional
JSON in HOSTILE_ARGS or under "hostile" in the spec file: {"target_seconds": N, "children": N}). Contained: it is
stopped first.
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
    target = float(args.get("target_seconds", 60))
    children = int(args.get("children", 4))
    per_child = target / children
    pids = []
    for _ in range(children):
        pid = os.fork()
        if pid == 0:
            start = time.process_time()
            while time.process_time() - start < per_child:
                pass
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    burnt = os.times().children_user + os.times().children_system
    if burnt >= target * 0.9:
        log(f"ESCAPED: children burnt {burnt:.1f} s of CPU")
        sys.exit(0)
    sys.exit(3)


main()
