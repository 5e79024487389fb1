"""Ending a run and removing what it left: the kill of its processes, the removal of its workspace (unmounting
its tmpfs, or a remover that neither depth nor names can defeat), and the quarantine of a workspace that could
not be removed (``CleanupFailed``)."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import time
from pathlib import Path

from . import mounts, tree
from .monitor import Status, exited, parent_of

logger = logging.getLogger(__name__)


class CleanupFailed(RuntimeError):
    """A job's workspace (its decrypted dataset among it) or its processes could not be removed. What is left was
    moved to ``quarantined`` (a root-only folder), when that worked; an operator must look at it."""

    def __init__(self, message: str, quarantined: Path | None = None) -> None:
        super().__init__(message)
        self.quarantined = quarantined


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
    """Removes a workspace (or any job folder): unmounts the tmpfs mounted in it, then removes what is left with
    a remover that depth, path length, names and permissions cannot defeat. Call once its processes are dead."""
    root = Path(root)
    for point in mounts.mount_points_under(root):
        mounts.unmount(point)
    tree.remove_tree(root)


def quarantine(root: Path, quarantine_dir: Path, why: BaseException) -> CleanupFailed:
    """Moves ``root`` into the root-only ``quarantine_dir`` (on the same file system) and returns the
    ``CleanupFailed`` to raise, after logging at CRITICAL: an operator must remove it."""
    target: Path | None = None
    try:
        quarantine_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(quarantine_dir, 0o700)
        target = quarantine_dir / f"{root.name}-{secrets.token_hex(4)}"
        os.rename(root, target)
    except OSError as exc:
        logger.critical("Could not quarantine the sandbox workspace %s: %s", root, exc)
        target = None
    logger.critical(
        "Could not remove the sandbox workspace %s (%s); %s",
        root,
        why,
        f"moved to {target} for an operator" if target else "it is still in place",
    )
    return CleanupFailed(f"the workspace {root} could not be removed: {why}", target)


def remove_or_quarantine(root: Path, quarantine_dir: Path) -> None:
    """Removes ``root``; raises CleanupFailed (after quarantining what is left) when it cannot."""
    try:
        rmtree_fixing_permissions(root)
    except OSError as exc:
        if os.path.lexists(root):
            raise quarantine(root, quarantine_dir, exc) from exc
