"""Hostile program: read another job's dataset (its host path, or /data of another sandbox via /proc).

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Exit status 0 and a log event
starting with "ESCAPED:" only when the attack succeeded (the content is never printed); status 3 when contained.
Optional targets as JSON in HOSTILE_ARGS or under "hostile" in the spec file (argv[1]):
{"paths": [host paths of the other job's files or folders], "secret_sha256": "<hex of the other dataset>"}.
"""

import glob
import hashlib
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


def digest(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read(64 << 20)).hexdigest()
    except OSError:
        return None


def main() -> None:
    args = hostile_args()
    secret = args.get("secret_sha256")
    own = set(os.listdir("/data")) if os.path.isdir("/data") else set()
    for path in args.get("paths", []):
        if os.path.isdir(path):
            try:
                names = os.listdir(path)
            except OSError:
                continue
            report(f"ESCAPED: listed another job's folder ({len(names)} entries)", 0)
        elif digest(path) is not None:
            report("ESCAPED: read another job's file by its host path", 0)
    candidates = glob.glob("/proc/[0-9]*/root/data/*") + glob.glob("/proc/[0-9]*/cwd/*")
    candidates += glob.glob("/proc/[0-9]*/fd/*")
    for path in candidates:
        found = digest(path)
        if found is None:
            continue
        if secret and found == secret:
            report(f"ESCAPED: read another job's dataset through {path}", 0)
        if not secret and path.startswith("/proc/") and "/root/data/" in path and os.path.basename(path) not in own:
            report(f"ESCAPED: read a foreign /data file through {path}", 0)
    report("contained: no other dataset reachable", 3)


main()
