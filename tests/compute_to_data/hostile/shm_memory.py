"""Hostile program: hold memory outside RLIMIT_AS: SysV shared memory, memfd files and several children, each
under the limit, together far over it.

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Exit status 0 and a log event
starting with "ESCAPED:" only when it held ``target_bytes`` together (default 4.6 GB; optional JSON in
HOSTILE_ARGS or under "hostile" in the spec file: {"target_bytes": N, "children": N}). Contained: the kernel kills
it (or an allocation fails: exit status 3).
"""

import ctypes
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


CHUNK = 32 << 20
IPC_PRIVATE, IPC_CREAT = 0, 0o1000


def hold_shm(size: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
    held = 0
    while held < size:
        shmid = libc.shmget(IPC_PRIVATE, ctypes.c_size_t(CHUNK), IPC_CREAT | 0o600)
        if shmid < 0:
            raise OSError(ctypes.get_errno(), "shmget")
        address = libc.shmat(shmid, None, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "shmat")
        ctypes.memset(address, 0xA5, CHUNK)  # touched: the pages exist; the segment outlives this process
        held += CHUNK


def hold_memfd(size: int) -> list[int]:
    fds, held = [], 0
    while held < size:
        fd = os.memfd_create("hoard")
        os.write(fd, b"\xa5" * CHUNK)
        fds.append(fd)
        held += CHUNK
    return fds


def hold_heap(size: int) -> list[bytearray]:
    return [bytearray(b"\xa5") * CHUNK for _ in range(size // CHUNK)]


def main() -> None:
    args = hostile_args()
    target = int(args.get("target_bytes", 4_600_000_000))
    children = int(args.get("children", 4))
    share = target // (children + 2)
    try:
        hold_shm(share)
        fds = hold_memfd(share)
        pids = []
        for _ in range(children):
            pid = os.fork()
            if pid == 0:
                try:
                    hoard = hold_heap(share)
                    time.sleep(30)
                    del hoard
                finally:
                    os._exit(0)
            pids.append(pid)
        time.sleep(1.0)
        alive = [pid for pid in pids if os.waitpid(pid, os.WNOHANG) == (0, 0)]
    except (OSError, MemoryError) as exc:
        log(f"contained: {exc}")
        sys.exit(3)
    if len(alive) == children:
        log(f"ESCAPED: held {share * (children + 2)} bytes in shm, memfd and {children} children ({len(fds)} fds)")
        sys.exit(0)
    sys.exit(3)


main()
