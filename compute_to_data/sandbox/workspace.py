"""A job's private folder on the host: what goes in (``write_input``), what comes out (through ``readback``),
created for one run and removed after it, exceptions included."""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from . import readback
from .cleanup import rmtree_fixing_permissions
from .host import SandboxConfig, SandboxUnavailable, running_as_root, sandbox_ids, unreadable_part

logger = logging.getLogger(__name__)

_KEY_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class Workspace:
    """A job's folder on the host: ``input/`` (read-only /data), ``out/`` (/out) and ``tmp/`` (private /tmp).

    Everything is owned by the sandbox uid (when we are root) with mode 0700, so other local users see nothing.
    The sandbox writes ``out/`` and ``tmp/``: treat their contents as hostile (symlinks, odd modes, many files);
    read results only through ``output_files``/``open_output``. The paths the program itself uses depend on the
    backend that runs it: ``SandboxBackend.paths(workspace)``."""

    def __init__(self, root: Path, uid: int, gid: int) -> None:
        self.root = root
        self.input_dir = root / "input"
        self.output_dir = root / "out"
        self.tmp_dir = root / "tmp"
        self._uid = uid
        self._gid = gid

    def write_input(self, name: str, chunks: Iterable[bytes]) -> Path:
        """Streams ``chunks`` to ``input/<name>`` (a new plain file name) readable only by the sandbox uid (0400)."""
        if not name or "/" in name or name in (".", "..") or "\0" in name:
            raise ValueError(f"input name must be a plain file name, got {name!r}")
        path = self.input_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            if running_as_root():
                os.fchown(fh.fileno(), self._uid, self._gid)
            os.fchmod(fh.fileno(), 0o400)
        return path

    def output_files(self) -> list[str]:
        """Names of the regular files directly under ``out/``; symlinks, folders and devices are left out."""
        return readback.output_files(self.output_dir)

    def open_output(self, name: str) -> BinaryIO:
        """Opens ``out/<name>`` for reading without following symlinks; refuses anything but a regular file."""
        return readback.open_output(self.output_dir, name)


def _ensure_base(base: Path) -> None:
    if not base.exists():
        base.mkdir(mode=0o711, parents=True, exist_ok=True)
        os.chmod(base, 0o711)  # noqa: S103 - others may only traverse; mkdir's mode is filtered by the umask


def _make_private_dir(path: Path, uid: int, gid: int) -> None:
    path.mkdir(mode=0o700)
    if running_as_root():
        os.chown(path, uid, gid)


@contextmanager
def workspace(base: Path, key: str, config: SandboxConfig) -> Iterator[Workspace]:
    """Creates ``base/<key>-<random>/`` with input/, out/ and tmp/ and removes it at exit, exceptions included.

    ``base`` is created with mode 0711 when missing; it and its parents must be traversable by the sandbox uid
    (pytest's tmp_path is not: it is 0700 under /tmp/pytest-of-<user>). Removal errors are logged, not raised."""
    base = Path(base)
    _ensure_base(base)
    uid, gid = sandbox_ids(config)
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
        ws = Workspace(root, uid, gid)
        for sub in (ws.input_dir, ws.output_dir, ws.tmp_dir):
            _make_private_dir(sub, uid, gid)
        yield ws
    finally:
        try:
            rmtree_fixing_permissions(root)
        except OSError:
            logger.exception("Could not remove the sandbox workspace %s", root)
