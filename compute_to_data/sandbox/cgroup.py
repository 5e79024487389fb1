"""A per-run control group: memory over the whole tree (shared memory and tmpfs pages included), a process count,
CPU time over the whole tree, the kill of everything in it, and the facts a run's end is explained from.

The launcher's child joins the group before it execs bwrap (``JobCgroup.procs_files``), so nothing of the run
starts outside it. Two layouts, one interface: cgroup v1 (one hierarchy per controller: memory, pids, cpuacct)
and cgroup v2 (one unified hierarchy, used when it has the memory, pids and cpu controllers delegated). Root only:
an unprivileged worker gets ``None`` from ``job_cgroup`` and keeps to rlimits."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_V1_CONTROLLERS = ("memory", "pids", "cpuacct")
_V2_CONTROLLERS = ("memory", "pids", "cpu")
PARENT_NAME = "marketplace-sandbox"
KILL_SECONDS = 5.0
# A group of a worker that died (SIGKILL, a crash) stays behind, empty: the next run removes it once it is older
# than this and its owner (``owner_alive``, by the group's name) is gone.
STALE_SECONDS = 60.0


class CgroupError(OSError):
    """The run's control group could not be created, filled or removed."""


@dataclass(frozen=True)
class Facts:
    """What the kernel counted for a run: OOM kills (or the group at its memory limit with a task killed), forks
    refused at pids.max, and CPU seconds over the whole tree."""

    oom_killed: bool
    pids_refused: bool
    cpu_seconds: float


def _read(path: Path) -> str:
    return path.read_text()


def _keyed(text: str) -> dict[str, int]:
    """``key value`` lines (memory.oom_control, memory.events, pids.events, cpu.stat) as a dict."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value)
    return out


def _own_path(controller: str | None) -> str:
    """This process's cgroup path in the v1 ``controller`` hierarchy (or v2's, for None), from /proc/self/cgroup."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (controller is None and controllers == "") or (
            controller is not None and controller in controllers.split(",")
        ):
            return path
    raise CgroupError(errno.ENOENT, f"no {controller or 'unified'} cgroup for this process")


class JobCgroup:
    """One run's group. Create it with ``job_cgroup``; ``remove`` kills what is left in it and deletes it."""

    version: int
    paths: tuple[Path, ...]

    @property
    def procs_files(self) -> tuple[str, ...]:
        """The files the child writes its pid to, in order, to join the group."""
        return tuple(str(p / "cgroup.procs") for p in self.paths)

    def facts(self) -> Facts:
        raise NotImplementedError

    def cpu_seconds(self) -> float:
        raise NotImplementedError

    def pids(self) -> list[int]:
        found: set[int] = set()
        for path in self.paths:
            with contextlib.suppress(FileNotFoundError):
                found.update(int(p) for p in _read(path / "cgroup.procs").split())
        return sorted(found)

    def kill(self) -> None:
        """SIGKILLs every process in the group until none is left (a forking tree is frozen out by pids.max)."""
        deadline = time.monotonic() + KILL_SECONDS
        while pids := self.pids():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise CgroupError(errno.EBUSY, f"processes {pids[:10]} survive in {self.paths[0]}")
            time.sleep(0.01)

    def remove(self) -> None:
        """Kills what is left and deletes the group; CgroupError when it cannot (its tasks never die)."""
        self.kill()
        deadline = time.monotonic() + KILL_SECONDS
        for path in self.paths:
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:  # EBUSY while the last task is being torn down
                    if time.monotonic() > deadline:
                        raise CgroupError(exc.errno, f"cannot remove {path}: {exc.strerror}") from exc
                    time.sleep(0.01)


class _V1(JobCgroup):
    version = 1

    def __init__(self, paths: dict[str, Path]) -> None:
        self._by = paths
        self.paths = tuple(paths.values())

    def cpu_seconds(self) -> float:
        return int(_read(self._by["cpuacct"] / "cpuacct.usage")) / 1e9

    def facts(self) -> Facts:
        oom = _keyed(_read(self._by["memory"] / "memory.oom_control"))
        pids = _keyed(_read(self._by["pids"] / "pids.events"))
        return Facts(
            oom_killed=oom.get("oom_kill", 0) > 0 or oom.get("under_oom", 0) > 0,
            pids_refused=pids.get("max", 0) > 0,
            cpu_seconds=self.cpu_seconds(),
        )


class _V2(JobCgroup):
    version = 2

    def __init__(self, path: Path) -> None:
        self.paths = (path,)

    def cpu_seconds(self) -> float:
        return _keyed(_read(self.paths[0] / "cpu.stat")).get("usage_usec", 0) / 1e6

    def facts(self) -> Facts:
        memory = _keyed(_read(self.paths[0] / "memory.events"))
        pids = _keyed(_read(self.paths[0] / "pids.events"))
        return Facts(
            oom_killed=memory.get("oom_kill", 0) > 0 or memory.get("oom_group_kill", 0) > 0,
            pids_refused=pids.get("max", 0) > 0,
            cpu_seconds=self.cpu_seconds(),
        )

    def kill(self) -> None:
        kill_file = self.paths[0] / "cgroup.kill"  # Linux 5.14+: the kernel kills the whole tree at once
        if kill_file.exists():
            with contextlib.suppress(FileNotFoundError):
                kill_file.write_text("1")
        super().kill()


def _v2_parent() -> Path | None:
    """The unified hierarchy's folder for sandboxes when it delegates memory, pids and cpu; None otherwise."""
    unified = CGROUP_ROOT if (CGROUP_ROOT / "cgroup.controllers").exists() else CGROUP_ROOT / "unified"
    try:
        available = set(_read(unified / "cgroup.controllers").split())
        own = unified / _own_path(None).lstrip("/")
    except (OSError, CgroupError):
        return None
    if not set(_V2_CONTROLLERS) <= available:
        return None
    # v2 forbids processes in a group that hands controllers to its children: the sandboxes' parent is a
    # sibling of the worker's own group, under the group above it.
    parent = (own.parent if own != unified else unified) / PARENT_NAME
    return parent


def _v1_parents() -> dict[str, Path] | None:
    parents: dict[str, Path] = {}
    for controller in _V1_CONTROLLERS:
        root = CGROUP_ROOT / controller
        if not (root / "cgroup.procs").exists():
            return None
        try:
            own = _own_path(controller)
        except (OSError, CgroupError):
            return None
        parents[controller] = root / own.lstrip("/") / PARENT_NAME
    return parents


def cgroups_available() -> str | None:
    """Why per-run groups cannot be made here (not root, no v1 memory/pids/cpuacct, no delegated v2), or None."""
    if os.geteuid() != 0:
        return "the worker is not root"
    if _v1_parents() is None and _v2_parent() is None:
        return "neither cgroup v1 memory/pids/cpuacct nor a cgroup v2 with memory, pids and cpu is mounted"
    return None


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _sweep_stale(parent: Path, owner_alive: Callable[[str], bool]) -> None:
    """Removes the empty groups of dead owners under ``parent`` (the host's sandboxes' folder)."""
    now = time.time()
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(parent):
            if not entry.is_dir(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                if (
                    now - entry.stat().st_mtime > STALE_SECONDS
                    and not _read(Path(entry.path) / "cgroup.procs").split()
                    and not owner_alive(entry.name)
                ):
                    os.rmdir(entry.path)


def job_cgroup(
    *, memory_bytes: int, processes: int, label: str, owner_alive: Callable[[str], bool]
) -> JobCgroup | None:
    """A new, empty group named ``<label>-<random>`` with the limits set, or None when ``cgroups_available`` says
    why not; on the way, removes the stale groups of owners ``owner_alive`` (given a group's name) says are gone.
    Raises CgroupError when the host has the controllers but the group cannot be made."""
    if cgroups_available() is not None:
        return None
    name = f"{label}-{secrets.token_hex(6)}"
    try:
        v1 = _v1_parents()
        if v1 is not None:
            made: dict[str, Path] = {}
            try:
                for controller, parent in v1.items():
                    parent.mkdir(exist_ok=True)
                    _sweep_stale(parent, owner_alive)
                    made[controller] = parent / name
                    made[controller].mkdir()
                memory = made["memory"]
                _write(memory / "memory.limit_in_bytes", str(memory_bytes))
                memsw = memory / "memory.memsw.limit_in_bytes"
                if memsw.exists():  # swap accounting: no way around the limit through swap
                    _write(memsw, str(memory_bytes))
                _write(made["pids"] / "pids.max", str(processes))
            except BaseException:
                _V1(made).remove()
                raise
            return _V1(made)
        v2 = _v2_parent()
        assert v2 is not None  # cgroups_available said one of the two is there
        v2.mkdir(exist_ok=True)
        _sweep_stale(v2, owner_alive)
        wanted = " ".join(f"+{c}" for c in _V2_CONTROLLERS)
        if not set(_V2_CONTROLLERS) <= set(_read(v2 / "cgroup.subtree_control").split()):
            _write(v2.parent / "cgroup.subtree_control", wanted)
            _write(v2 / "cgroup.subtree_control", wanted)
        group = _V2(v2 / name)
        group.paths[0].mkdir()
        try:
            _write(group.paths[0] / "memory.max", str(memory_bytes))
            swap = group.paths[0] / "memory.swap.max"
            if swap.exists():
                _write(swap, "0")
            _write(group.paths[0] / "pids.max", str(processes))
        except BaseException:
            group.remove()
            raise
        return group
    except CgroupError:
        raise
    except OSError as exc:
        raise CgroupError(exc.errno, f"cannot create the run's cgroup: {exc}") from exc
