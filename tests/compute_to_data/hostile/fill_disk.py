"""Hostile program: fill the disk through /out and /tmp (4 MiB files, or with {"mode": "files"} many empty ones).

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Exit status 0 and a log event
starting with "ESCAPED:" only when it wrote ``target_bytes`` (default 4 GiB) or created ``target_files``
(default 200000) files; options as JSON in HOSTILE_ARGS or under "hostile" in the spec file. Contained: it is
killed, or an OSError (file too large, no space) ends it with a traceback.
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
    args = hostile_args()
    folders = [os.environ.get("HOSTILE_OUT", "/out"), os.environ.get("TMPDIR", "/tmp")]
    if args.get("mode") == "files":
        target = int(args.get("target_files", 200_000))
        for i in range(target):
            open(os.path.join(folders[i % 2], f"f{i}"), "wb").close()
        print(json.dumps({"event": "log", "message": f"ESCAPED: created {target} files"}), flush=True)
        sys.exit(0)
    target = int(args.get("target_bytes", 4 << 30))
    block = b"\x5a" * (4 << 20)  # one block per file: small enough for any sane per-file size limit
    written = 0
    index = 0
    while written < target:
        with open(os.path.join(folders[index % 2], f"fill-{index}.bin"), "wb") as fh:
            fh.write(block)
        written += len(block)
        index += 1
    print(json.dumps({"event": "log", "message": f"ESCAPED: wrote {written} bytes"}), flush=True)
    sys.exit(0)


main()
