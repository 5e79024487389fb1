"""Ending a run and removing what it left: the kill of its processes and the removal of its workspace."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

from .monitor import Status, exited, parent_of


def stop_run(pid: int, pidfd: int | None, status: Status | None) -> None:
    """Kills the run; the leader ``pid`` must not be reaped yet, so its pid still names our process group.

    In a sandbox the program (pid 1 inside) goes first: the kernel then kills the whole namespace and bwrap reaps
    it and exits, leaving no orphan. The group kill follows in any case (bwrap itself, or an unsandboxed run)."""
    if status is not None and not exited(pid, None, 0):
        status.known.wait(1.0)  # a run stopped right at its start: bwrap reports the pid within milliseconds
    child_pid = status.child_pid if status is not None else None
    if child_pid is not None and not exited(pid, None, 0) and parent_of(child_pid) == pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child_pid, signal.SIGKILL)
        deadline = time.monotonic() + 1.0
        while not exited(pid, pidfd, 0.05) and time.monotonic() < deadline:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def rmtree_fixing_permissions(root: Path) -> None:
    """Removes a workspace even when the sandbox left folders without write or search permission."""

    def fix(func: Callable[..., object], path: str, _exc: object) -> None:
        for target in (os.path.dirname(path), path):
            if os.path.isdir(target) and not os.path.islink(target):
                with contextlib.suppress(OSError):
                    os.chmod(target, 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    shutil.rmtree(root, onerror=fix)
