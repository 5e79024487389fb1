"""Hostile program: write past the disk limits where a path-walking watchdog cannot see: files under paths longer
than PATH_MAX (``mode`` "deep", bytes; "deep_files", many empty files), or space held by an unlinked file kept
open ("unlinked").

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Exit status 0 and a log event
starting with "ESCAPED:" only when it wrote ``target_bytes`` (default 1 GiB) or ``target_files`` (default 20000);
options as JSON in HOSTILE_ARGS or under "hostile" in the spec file (default mode "deep"). Contained: it is
stopped, or the space runs out (exit status 3).
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


BLOCK = b"\x5a" * (1 << 20)


def deep_dir(top: str, levels: int) -> int:
    """A folder ``levels`` deep under ``top`` with 200-character names (the path far beyond PATH_MAX)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(levels):
        os.mkdir("d" * 200, dir_fd=fd)
        deeper = os.open("d" * 200, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    return fd


def main() -> None:
    args = hostile_args()
    mode = args.get("mode", "deep")
    target = int(args.get("target_bytes", 1 << 30))
    written = 0
    try:
        if mode == "unlinked":
            fh = open("/tmp/hidden.bin", "wb")  # noqa: SIM115 - held open on purpose, even when a write fails
            os.unlink("/tmp/hidden.bin")
            try:
                while written < target:
                    written += fh.write(BLOCK)
                    fh.flush()
            except OSError as exc:
                log(f"contained: {exc.strerror}")
                time.sleep(0.5)  # still holding what it wrote
                sys.exit(3)
            log(f"ESCAPED: held {written} bytes in an unlinked file")
            sys.exit(0)
        fd = deep_dir(os.environ.get("HOSTILE_OUT", "/out"), 40)
        if mode == "deep_files":
            files = int(args.get("target_files", 20000))
            for i in range(files):
                os.close(os.open(f"f{i}", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=fd))
            log(f"ESCAPED: created {files} files below PATH_MAX")
            sys.exit(0)
        index = 0
        while written < target:
            out = os.open(f"fill-{index}.bin", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=fd)
            try:
                written += os.write(out, BLOCK)
            finally:
                os.close(out)
            index += 1
        log(f"ESCAPED: wrote {written} bytes below PATH_MAX")
        sys.exit(0)
    except OSError as exc:
        log(f"contained: {exc.strerror}")
        time.sleep(0.5)  # the watchdog may see it first; either way the reason is the disk
        sys.exit(3)


main()
