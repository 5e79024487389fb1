"""Reading what a run wrote. The sandbox wrote ``out/``: its entries may be symlinks to host files, folders,
devices or FIFOs, so nothing there is followed or opened unless it is a regular file."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


def output_files(output_dir: Path) -> list[str]:
    """Names of the regular files directly under ``output_dir``; symlinks, folders and devices are left out."""
    names = []
    with os.scandir(output_dir) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                names.append(entry.name)
    return sorted(names)


def open_output(output_dir: Path, name: str) -> BinaryIO:
    """Opens ``output_dir/<name>`` for reading without following symlinks (the folder itself included) or
    blocking on a FIFO; refuses anything but a regular file."""
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"output name must be a plain file name, got {name!r}")
    dir_fd = os.open(output_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{name} is not a regular file")
    return os.fdopen(fd, "rb")
