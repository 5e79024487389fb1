"""Hostile program: write outside /out and /tmp (the root, /usr, /data, the runner, site-packages, a host path).

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Exit status 0 and a log event
starting with "ESCAPED:" only when the attack succeeded; status 3 when contained.
Optional extra folders as JSON in HOSTILE_ARGS or under "hostile" in the spec file: {"dirs": [...]}.
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
    dirs = ["/", "/usr", "/usr/lib", "/usr/local/bin", "/bin", "/data", "/opt", "/opt/runner", "/opt/runner/dp_runner"]
    dirs += ["/opt/site", "/dev", "/proc", "/etc", "/home", "/root", "/work/main", "/var/tmp"]
    dirs += list(hostile_args().get("dirs", []))
    name = f"hostile-{os.getpid()}.txt"
    for folder in dirs:
        path = os.path.join(folder, name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError:
            continue
        os.write(fd, b"written by a hostile job\n")
        os.close(fd)
        report(f"ESCAPED: created {path}", 0)
    existing = glob.glob("/data/*") + glob.glob("/opt/runner/dp_runner/*.py") + ["/usr/bin/python3"]
    for path in existing:
        try:
            with open(path, "ab") as fh:
                fh.write(b"")
                fh.flush()
            report(f"ESCAPED: opened {path} for writing", 0)
        except OSError:
            pass
        try:
            os.rename(path, path + ".moved")
            report(f"ESCAPED: renamed {path}", 0)
        except OSError:
            pass
    report("contained: nothing writable outside /out and /tmp", 3)


main()
