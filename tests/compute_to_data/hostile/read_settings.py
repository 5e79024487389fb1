"""Hostile program: read the marketplace's settings or any of its source (the project folder).

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Exit status 0 and a log event
starting with "ESCAPED:" only when the attack succeeded (the content is never printed); status 3 when contained.
Optional extra targets as JSON in HOSTILE_ARGS or under "hostile" in the spec file: {"paths": [...]}.
"""

import glob
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


def report(message: str, code: int) -> None:
    print(json.dumps({"event": "log", "message": message}), flush=True)
    sys.exit(code)


def main() -> None:
    projects = ["/work/main", "/app", "/srv/app", "/opt/app", "/code"]
    files = [f"{p}/{name}" for p in projects for name in ("config/settings/base.py", ".env", "manage.py")]
    files += glob.glob("/proc/[0-9]*/root/work/main/config/settings/base.py")
    files += list(hostile_args().get("paths", []))
    for path in files:
        try:
            if os.path.isdir(path):
                os.listdir(path)
                report(f"ESCAPED: listed {path}", 0)
            with open(path, "rb") as fh:
                if fh.read(1):
                    report(f"ESCAPED: read {path}", 0)
        except OSError:
            pass
    for folder in [*projects, "/work", "/home", "/root", "/etc", "/var"]:
        try:
            if os.listdir(folder):
                report(f"ESCAPED: listed {folder}", 0)
        except OSError:
            pass
    report("contained: no settings or project files readable", 3)


main()
