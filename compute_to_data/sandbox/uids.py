"""A uid (and gid of the same number) of its own for each running job, leased host-wide from a pool reserved for
the sandbox, so that no rlimit, file or process is shared between jobs or with system services.

A lease is an exclusive ``flock`` on ``<lease_dir>/<uid>.lock``: two workers on one host never hold the same uid,
and the kernel drops the lock of a worker that dies, so a crashed worker's lease frees itself. Held from the
workspace's creation to the end of its cleanup."""

from __future__ import annotations

import fcntl
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from .host import SandboxUnavailable


@dataclass
class UidLease:
    """One leased uid; ``release`` (or the process's death) frees it."""

    uid: int
    _fd: int

    @property
    def gid(self) -> int:
        return self.uid

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = -1


def check_pool(base: int, count: int) -> None:
    """Raises SandboxUnavailable for a pool that overlaps a system uid: 65534 (nobody), uid 0, or any account."""
    if base <= 0 or count <= 0 or base + count > 1 << 31:
        raise SandboxUnavailable(f"The sandbox uid pool {base}..{base + count - 1} is not a valid range of uids.")
    pool = range(base, base + count)
    if 65534 in pool:
        raise SandboxUnavailable("The sandbox uid pool must not contain 65534 (nobody, shared with system services).")
    taken = sorted(entry.pw_uid for entry in pwd.getpwall() if entry.pw_uid in pool)
    if taken:
        raise SandboxUnavailable(
            f"The sandbox uid pool {base}..{base + count - 1} contains uids of accounts in /etc/passwd ({taken[:5]}): "
            "choose COMPUTE_SANDBOX_UID_BASE/COMPUTE_SANDBOX_UID_COUNT outside every account."
        )


def lease_uid(lease_dir: Path, base: int, count: int) -> UidLease:
    """Leases the first free uid of ``base .. base+count-1``; SandboxUnavailable when all are in use."""
    check_pool(base, count)
    lease_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(lease_dir, 0o700)
    start = os.getpid() % count  # workers of one host start at different places, so they rarely contend
    for i in range(count):
        uid = base + (start + i) % count
        fd = os.open(lease_dir / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        return UidLease(uid, fd)
    raise SandboxUnavailable(
        f"All {count} sandbox uids ({base}..{base + count - 1}) are leased: too many jobs on this host at once "
        "(raise COMPUTE_SANDBOX_UID_COUNT)."
    )


def lease_held(lease_dir: Path, uid: int) -> bool:
    """Whether some process (this one included, through another lease) holds ``uid``'s lease now."""
    try:
        fd = os.open(lease_dir / f"{uid}.lock", os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # drops the lock just taken, if it was
    return False
