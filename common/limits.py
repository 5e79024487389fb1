"""What one run may use: the ``Limits`` of a sandbox, the rlimits they become, and how they read to a person.

Pure standard library, in ``common`` because the sandbox (``compute_to_data``) applies them and the
upload checks (``marketplace.contained``) apply the same rlimits to their parsers."""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. All rlimits apply per process; wall clock and disk to the whole sandbox. In
    the sandbox's root mode (compute_to_data.sandbox.cgroup) memory, processes and CPU time are enforced over the
    whole tree by the job's own cgroup instead, shared memory and tmpfs pages included."""

    memory_bytes: int = 4 << 30  # RLIMIT_AS (root mode: the cgroup's memory limit)
    # RLIMIT_CPU soft (SIGXCPU); hard = soft + 5 (SIGKILL). The program itself is pid 1 of its namespace, where
    # an unhandled SIGXCPU is ignored, so the launcher also stops it when its own CPU time reaches the soft limit.
    cpu_seconds: int = 600
    file_size_bytes: int = 256 << 20  # RLIMIT_FSIZE (capped at disk_bytes)
    # RLIMIT_NPROC: tasks (threads included). The kernel counts every task of the same host uid against it: in root
    # mode each job has a uid of its own (and the cgroup's pids.max), unprivileged sandboxes share the worker's.
    processes: int = 64
    open_files: int = 256  # RLIMIT_NOFILE
    wall_seconds: float = 900  # the launcher kills the sandbox after this
    # Allocated bytes under /out + /tmp, checked by a watchdog about every 0.1 s: a fast writer can overshoot by
    # what it writes in one interval before it is killed.
    disk_bytes: int = 512 << 20
    files: int = 10_000  # files and folders under /out + /tmp, checked by the same watchdog
    shm_bytes: int = 64 << 20  # size of the private /dev/shm tmpfs (outside RLIMIT_AS; inside the cgroup's memory)


def rlimit_setter(limits: Limits) -> Callable[[], None]:
    """A preexec_fn that only calls setrlimit (safe enough between fork and exec, unlike arbitrary Python)."""
    cpu = max(1, int(limits.cpu_seconds))
    fsize = min(limits.file_size_bytes, limits.disk_bytes)
    values = (
        (resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes)),
        (resource.RLIMIT_CPU, (cpu, cpu + 5)),
        (resource.RLIMIT_FSIZE, (fsize, fsize)),
        (resource.RLIMIT_NPROC, (limits.processes, limits.processes)),
        (resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files)),
        (resource.RLIMIT_CORE, (0, 0)),
    )

    def apply() -> None:
        for which, value in values:
            resource.setrlimit(which, value)

    return apply


def human_bytes(n: int) -> str:
    """``n`` bytes as a person reads them in a limit's message: "4 GiB", "1.5 MiB", "512 bytes"."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"
