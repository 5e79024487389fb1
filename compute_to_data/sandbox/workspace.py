"""A job's private folder on the host: what goes in (``write_input``), what comes out (through ``readback``),
created for one job and removed after it, exceptions included.

In root mode the workspace holds a uid of its own (``uids``) from creation to the end of its cleanup, and both its
folders are tmpfs mounts (``mounts``): the decrypted inputs never touch the disk, and the writable space
(``rw/``: /out and /tmp in the sandbox) has the run's byte and inode limits, enforced by the kernel. Unprivileged,
they are plain folders of our own uid, measured by a watchdog. Removal unmounts, or walks the tree with a remover
no depth or name defeats; when it still fails the folder is quarantined and ``CleanupFailed`` raised."""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from . import mounts, readback
from .cleanup import remove_or_quarantine
from .host import SandboxConfig, SandboxUnavailable, running_as_root, unreadable_part
from .limits import Limits
from .monitor import disk_usage
from .uids import UidLease, lease_uid

logger = logging.getLogger(__name__)

_KEY_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
INPUT_INODES = 4096
# The writable tmpfs holds its root, out/ and tmp/ besides the job's files; one more inode and 1 MiB beyond the
# limits let the watchdog tell "at the limit" from "over it" (the kernel refuses anything further).
_RW_OWN_INODES = 3
_RW_SLACK_BYTES = 1 << 20


class Workspace:
    """A job's folder on the host: ``input/`` (read-only /data) and ``rw/out/`` (/out) and ``rw/tmp/`` (private
    /tmp), owned by the job's uid with mode 0700, so other local users see nothing.

    The sandbox writes ``out/`` and ``tmp/``: treat their contents as hostile (symlinks, odd modes, many files);
    read results only through ``output_files``/``open_output``. The paths the program itself uses depend on the
    backend that runs it: ``SandboxBackend.paths(workspace)``."""

    def __init__(self, root: Path, uid: int, gid: int, *, mounted: bool) -> None:
        self.root = root
        self.input_dir = root / "input"
        self.rw_dir = root / "rw"
        self.output_dir = self.rw_dir / "out"
        self.tmp_dir = self.rw_dir / "tmp"
        self.uid = uid
        self.gid = gid
        # Root mode: input/ and rw/ are tmpfs mounts.
        self.mounted = mounted

    def write_input(self, name: str, chunks: Iterable[bytes]) -> Path:
        """Streams ``chunks`` to ``input/<name>`` (a new plain file name) readable only by the job's uid (0400)."""
        if not name or "/" in name or name in (".", "..") or "\0" in name:
            raise ValueError(f"input name must be a plain file name, got {name!r}")
        path = self.input_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            if running_as_root():
                os.fchown(fh.fileno(), self.uid, self.gid)
            os.fchmod(fh.fileno(), 0o400)
        return path

    def output_files(self) -> list[str]:
        """Names of the regular files directly under ``out/``; symlinks, folders and devices are left out."""
        return readback.output_files(self.output_dir)

    def open_output(self, name: str) -> BinaryIO:
        """Opens ``out/<name>`` for reading without following symlinks; refuses anything but a regular file."""
        return readback.open_output(self.output_dir, name)

    # --- the writable space, for the launcher

    def prepare(self, limits: Limits) -> None:
        """Gives the writable tmpfs the run's limits (root mode); SandboxUnavailable if what is there exceeds them."""
        if not self.mounted:
            return
        size = mounts.TmpfsSize(limits.disk_bytes + _RW_SLACK_BYTES, limits.files + _RW_OWN_INODES + 1)
        try:
            mounts.resize_tmpfs(self.rw_dir, size, self.uid, self.gid)
        except OSError as exc:
            raise SandboxUnavailable(f"The job's writable space cannot take the run's limits: {exc}") from exc

    def over_disk(self, limits: Limits) -> bool:
        """Whether the job holds more than its disk limits in ``out/`` and ``tmp/``: the tmpfs's own count in root
        mode (every byte and inode, however deep or hidden, unlinked open files included), a walk otherwise."""
        if self.mounted:
            used, inodes = mounts.usage(self.rw_dir)
            # At the byte limit counts: RLIMIT_FSIZE may stop a hidden (unlinked) file right there.
            return used >= limits.disk_bytes or inodes - _RW_OWN_INODES > limits.files
        used, entries = disk_usage((self.output_dir, self.tmp_dir), limits.disk_bytes, limits.files)
        return used > limits.disk_bytes or entries > limits.files


def _ensure_base(base: Path) -> None:
    if not base.exists():
        base.mkdir(mode=0o711, parents=True, exist_ok=True)
        os.chmod(base, 0o711)  # noqa: S103 - others may only traverse; mkdir's mode is filtered by the umask


def _make_private_dir(path: Path, uid: int, gid: int) -> None:
    path.mkdir(mode=0o700)
    if running_as_root():
        os.chown(path, uid, gid)


def quarantine_dir(base: Path, config: SandboxConfig) -> Path:
    return Path(config.quarantine_dir) if config.quarantine_dir else base / ".quarantine"


@contextmanager
def workspace(base: Path, key: str, config: SandboxConfig) -> Iterator[Workspace]:
    """Creates ``base/<key>-<random>/`` with input/, rw/out/ and rw/tmp/ and removes it at exit, exceptions
    included; in root mode under a leased uid, on tmpfs mounts.

    ``base`` is created with mode 0711 when missing; it and its parents must be traversable by the job's uid
    (pytest's tmp_path is not: it is 0700 under /tmp/pytest-of-<user>). A removal that fails raises
    ``CleanupFailed`` once what is left was moved to the quarantine folder (logged at CRITICAL)."""
    base = Path(base)
    _ensure_base(base)
    lease: UidLease | None = None
    if running_as_root():
        lease = lease_uid(Path(config.lease_dir), config.uid_base, config.uid_count)
        uid, gid = lease.uid, lease.gid
    else:
        uid, gid = os.getuid(), os.getgid()
    try:
        bad = unreadable_part(str(base), uid, gid, want=1)
        if bad is not None:
            raise SandboxUnavailable(
                f"The workspace base {base} is not traversable by the sandbox uid {uid} ({bad}): "
                "use a folder whose parents are all searchable by others (chmod o+x), created with mode 0711."
            )
        label = _KEY_SAFE.sub("-", key)[:40].strip("-.") or "job"
        root = base / f"{label}-{secrets.token_hex(8)}"
        _make_private_dir(root, uid, gid)
        try:
            ws = Workspace(root, uid, gid, mounted=lease is not None)
            for sub in (ws.input_dir, ws.rw_dir):
                _make_private_dir(sub, uid, gid)
            if ws.mounted:
                try:
                    mounts.mount_tmpfs(ws.input_dir, mounts.TmpfsSize(config.input_bytes, INPUT_INODES), uid, gid)
                    defaults = Limits()
                    rw = mounts.TmpfsSize(defaults.disk_bytes + _RW_SLACK_BYTES, defaults.files + _RW_OWN_INODES + 1)
                    mounts.mount_tmpfs(ws.rw_dir, rw, uid, gid)
                except OSError as exc:
                    raise SandboxUnavailable(f"Cannot mount the job's tmpfs folders: {exc}") from exc
            for sub in (ws.output_dir, ws.tmp_dir):
                _make_private_dir(sub, uid, gid)
            yield ws
        finally:
            remove_or_quarantine(root, quarantine_dir(base, config))
    finally:
        if lease is not None:
            lease.release()
