"""Hostile program: link a key into the kernel keyrings (session, user, process) for a later job to read, and read
one a former job left ("mode": "link", "read", or both by default).

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Exit status 0 and a log event
starting with "ESCAPED:" when a key was added or one was found; options as JSON in HOSTILE_ARGS or under "hostile"
in the spec file: {"mode": "link" | "read", "description": "..."}. Contained: every keyring call is refused
(exit status 3).
"""

import ctypes
import json
import os
import platform
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


# keyctl(2) and friends by number: no libkeyutils in the sandbox.
NUMBERS = {"x86_64": (248, 249, 250), "aarch64": (217, 218, 219)}  # add_key, request_key, keyctl
KEYRINGS = {"session": -3, "user": -4, "process": -2, "thread": -1}
KEYCTL_SEARCH = 10


def main() -> None:
    args = hostile_args()
    mode = args.get("mode", "both")
    description = str(args.get("description", "hostile-key")).encode()
    add_key, _request_key, keyctl = NUMBERS[platform.machine()]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    found = []
    for name, ring in KEYRINGS.items():
        if mode in ("link", "both"):
            secret = b"stolen-dataset-key"
            serial = libc.syscall(add_key, b"user", description, secret, len(secret), ring)
            if serial >= 0:
                found.append(f"added key {serial} to the {name} keyring")
        if mode in ("read", "both"):
            serial = libc.syscall(keyctl, KEYCTL_SEARCH, ring, b"user", description, 0)
            if serial >= 0:
                found.append(f"found key {serial} in the {name} keyring")
    if found:
        log("ESCAPED: " + "; ".join(found))
        sys.exit(0)
    log(f"contained: keyring calls refused (errno {ctypes.get_errno()})")
    sys.exit(3)


main()
