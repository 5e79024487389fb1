"""Hostile program: read the host's /etc/shadow (directly or through /proc/<pid>/root).

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Exit status 0 and a log event
starting with "ESCAPED:" only when the attack succeeded (the content is never printed); status 3 when contained.
"""

import glob
import json
import sys


def report(message: str, code: int) -> None:
    print(json.dumps({"event": "log", "message": message}), flush=True)
    sys.exit(code)


def main() -> None:
    targets = ["/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/proc/self/root/etc/shadow"]
    targets += glob.glob("/proc/[0-9]*/root/etc/shadow")
    targets += ["/var/lib/extrausers/shadow", "/root/.bash_history", "/root/.ssh/id_rsa"]
    for path in targets:
        try:
            with open(path, "rb") as fh:
                if fh.read(1):
                    report(f"ESCAPED: read {path}", 0)
        except OSError:
            pass
    report("contained: no shadow file readable", 3)


main()
