"""Size- and inode-limited tmpfs mounts for a job's workspace (root mode), through libc's mount(2)/umount2(2).

A tmpfs holds its files in memory, never on the disk; its ``size=`` and ``nr_inodes=`` are enforced by the kernel
whatever the names or depth of what is written, and count the space of unlinked files still open. Its pages are
charged to the memory cgroup of the process that writes them, so what a job writes also counts against its
memory limit. Unmounting (``MNT_DETACH`` once the job's processes are dead) frees everything at once."""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


def _check(result: int, what: str, path: Path) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} {path}: {os.strerror(err)}")


@dataclass(frozen=True)
class TmpfsSize:
    """A tmpfs's limits: bytes and inodes (files, folders and links, the root folder included)."""

    size_bytes: int
    inodes: int


def _options(size: TmpfsSize, uid: int, gid: int) -> bytes:
    return f"size={size.size_bytes},nr_inodes={size.inodes},mode=0700,uid={uid},gid={gid}".encode()


def mount_tmpfs(path: Path, size: TmpfsSize, uid: int, gid: int) -> None:
    """Mounts a private tmpfs on ``path`` (an empty folder): nosuid and nodev, mode 0700 owned by uid/gid."""
    flags = MS_NOSUID | MS_NODEV
    _check(_libc.mount(b"sandbox", os.fsencode(path), b"tmpfs", flags, _options(size, uid, gid)), "mount", path)


def resize_tmpfs(path: Path, size: TmpfsSize, uid: int, gid: int) -> None:
    """Sets the mounted tmpfs on ``path`` to new limits, keeping its files (EINVAL if they no longer fit)."""
    flags = MS_REMOUNT | MS_NOSUID | MS_NODEV
    _check(_libc.mount(b"sandbox", os.fsencode(path), b"tmpfs", flags, _options(size, uid, gid)), "remount", path)


def unmount(path: Path) -> None:
    """Detaches the mount on ``path`` (the files go with the last reference, immediately once nothing of the
    job is alive); never follows a symlink at ``path``."""
    _check(_libc.umount2(os.fsencode(path), MNT_DETACH | UMOUNT_NOFOLLOW), "umount", path)


def mount_points_under(path: Path) -> list[Path]:
    """Mount points at or below ``path``, deepest first (from /proc/self/mountinfo)."""
    root = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo", "rb") as fh:
        for line in fh:
            fields = line.split()
            # Octal escapes (\040 for a space) as the kernel writes them.
            point = fields[4].decode("unicode_escape").encode("latin-1").decode("utf-8", "surrogateescape")
            if point == root or point.startswith(root + "/"):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def usage(path: Path) -> tuple[int, int]:
    """Bytes and inodes in use on the file system mounted at ``path`` (open unlinked files included)."""
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_files - st.f_ffree
