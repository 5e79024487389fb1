"""Walking and removing a tree the sandbox wrote, with one directory descriptor open at a time: down by name and
back up through "..", so neither depth, path length (beyond PATH_MAX), recursion limits nor folders left without
permissions stop it. Only for trees nothing renames meanwhile (the walker follows no symlink, and a tree the job
is still changing is at worst measured wrongly, never escaped from)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_dir(name: str | Path, dir_fd: int | None = None) -> int:
    """Opens a folder without following a symlink; one the job left without read or search permission is given
    them back first (it is the job's, or the worker's own)."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        os.chmod(name, 0o700, dir_fd=dir_fd, follow_symlinks=False)
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


def walk_stats(top: Path) -> Iterator[os.stat_result]:
    """The lstat of every entry below ``top`` (not ``top`` itself), depth-first; entries that vanish are skipped."""
    fd = open_dir(top)
    pending: list[list[str]] = []
    try:
        while True:
            subdirs: list[str] = []
            with os.scandir(fd) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    yield st
                    if stat.S_ISDIR(st.st_mode):
                        subdirs.append(entry.name)
            pending.append(subdirs)
            while True:
                while pending and not pending[-1]:
                    pending.pop()
                    if not pending:
                        return
                    up = os.open("..", DIR_FLAGS, dir_fd=fd)
                    os.close(fd)
                    fd = up
                try:
                    deeper = open_dir(pending[-1].pop(), fd)
                except OSError:
                    continue
                os.close(fd)
                fd = deeper
                break
    finally:
        os.close(fd)


def _unlink(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except PermissionError:  # the folder itself is read-only (mode 0500)
        os.fchmod(dir_fd, 0o700)
        os.unlink(name, dir_fd=dir_fd)


def remove_tree(root: Path) -> None:
    """Removes the folder ``root`` and everything below it (a plain file or link at ``root`` is unlinked)."""
    root = Path(root)
    parent_fd = os.open(root.parent, DIR_FLAGS)
    try:
        if not stat.S_ISDIR(os.lstat(root.name, dir_fd=parent_fd).st_mode):
            os.unlink(root.name, dir_fd=parent_fd)
            return
        names = [root.name]
        fd = open_dir(root.name, parent_fd)
        try:
            while True:
                child = None
                with os.scandir(fd) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            child = entry.name
                            break
                        _unlink(entry.name, fd)
                if child is not None:
                    with contextlib.suppress(PermissionError):
                        os.fchmod(fd, 0o700)
                    deeper = open_dir(child, fd)
                    os.close(fd)
                    fd = deeper
                    names.append(child)
                    continue
                done = names.pop()
                if not names:
                    break
                up = os.open("..", DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = up
                try:
                    os.rmdir(done, dir_fd=fd)
                except PermissionError:
                    os.fchmod(fd, 0o700)
                    os.rmdir(done, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(root.name, dir_fd=parent_fd)
    finally:
        os.close(parent_fd)
