"""Hostile program: get the dataset encryption key (key files on the host, or the worker's environment).

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Exit status 0 and a log event
starting with "ESCAPED:" only when the attack succeeded (the key is never printed); status 3 when contained.
Optional extra key paths as JSON in HOSTILE_ARGS or under "hostile" in the spec file: {"paths": [...]}.
"""

import glob
import json
import os
import sys

SECRET_WORDS = ("SECRET", "KEY", "TOKEN", "PASSWORD", "DJANGO_", "DATABASE_URL", "AWS_")


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


def secret_names(names: list[str]) -> list[str]:
    return [n for n in names if n != "HOSTILE_ARGS" and any(w in n.upper() for w in SECRET_WORDS)]


def main() -> None:
    found = secret_names(list(os.environ))
    if found:
        report(f"ESCAPED: secret-looking variables in the environment: {', '.join(sorted(found))}", 0)
    for path in glob.glob("/proc/[0-9]*/environ"):
        try:
            with open(path, "rb") as fh:
                names = [item.split(b"=", 1)[0].decode("ascii", "replace") for item in fh.read().split(b"\0")]
        except OSError:
            continue
        found = secret_names(names)
        if found:
            report(f"ESCAPED: secret-looking variables in {path}: {', '.join(sorted(found))}", 0)
    paths = list(hostile_args().get("paths", []))
    for project in ("/work/main", "/app", "/srv/app"):
        paths += glob.glob(f"{project}/.local/secrets/*") + [f"{project}/.local/secrets", f"{project}/.env"]
    for path in paths:
        try:
            if os.path.isdir(path):
                os.listdir(path)
                report(f"ESCAPED: listed {path}", 0)
            with open(path, "rb") as fh:
                if fh.read(1):
                    report(f"ESCAPED: read {path}", 0)
        except OSError:
            pass
    report("contained: no key material reachable", 3)


main()
