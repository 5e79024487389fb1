"""What a sandbox is, as data (in the manner of nsjail's config): the namespaces it unshares, the uid it runs as,
its file system as an ordered list of mounts, its environment and its limits. ``policy_for`` is the one place
that builds it; ``launcher.bwrap_argv`` only renders it, so what a job can see is read here, not in a command
line.

Layout (``policy_for`` with a workspace)::

    /usr                   host /usr, read-only (+ /bin, /lib, /lib64, /sbin as on the host: merged-usr symlinks)
    <prefix>               the interpreter's prefix, read-only, only when it is not under /usr
    /opt/site, /opt/site1  the site-packages folders, read-only (PYTHONPATH=/opt/runner:/opt/site:...)
    /opt/runner/dp_runner  the trusted runner package, read-only
    /data                  the workspace's input/ folder, read-only (spec + private inputs)
    /out                   the workspace's out/ folder, writable
    /tmp                   the workspace's tmp/ folder, writable (HOME, TMPDIR and the working directory)
    /proc                  a procfs of the sandbox's own pid namespace
    /dev                   null, zero, full, random, urandom, tty, pts; read-only tmpfs
    /dev/shm               a private tmpfs of ``Limits.shm_bytes``

Nothing else: no /etc, /home, /root, /var, /work, no project folder; the root itself is read-only. Every namespace
is new (no network at all, not even the host's loopback), nested user namespaces are disabled, capabilities are
dropped, and the program runs as an unprivileged uid under rlimits, as pid 1 of its pid namespace (when it ends,
the kernel kills whatever it left behind)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

from .host import Resolved
from .limits import Limits

DATA_MOUNT = "/data"
OUT_MOUNT = "/out"
TMP_MOUNT = "/tmp"
RUNNER_MOUNT = "/opt/runner"
# bwrap's --unshare-all (cgroup where the kernel has it), user included.
ALL_NAMESPACES = frozenset({"user", "ipc", "pid", "net", "uts", "cgroup"})

_FORBIDDEN_ENV_WORDS = ("SECRET", "KEY", "TOKEN", "PASSWORD")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Mount:
    """One entry of the sandbox's file system, applied in order: ``ro-bind``/``bind`` a host ``source`` at
    ``dest``, a ``symlink`` at ``dest`` to ``source``, an empty ``tmpfs`` (of ``size`` bytes when given), the
    sandbox's own ``proc``, or a minimal ``dev``."""

    kind: Literal["ro-bind", "bind", "symlink", "tmpfs", "proc", "dev"]
    dest: str
    source: str = ""
    size: int | None = None


@dataclass(frozen=True)
class SandboxPolicy:
    """Everything one sandbox is. Build it with ``policy_for``."""

    uid: int
    gid: int
    mounts: tuple[Mount, ...]
    env: dict[str, str]
    limits: Limits
    namespaces: frozenset[str] = ALL_NAMESPACES
    nested_user_namespaces: bool = False
    # Remounted read-only once everything is mounted: /dev and / are tmpfs the sandbox uid owns.
    read_only: tuple[str, ...] = ("/dev", "/")
    cwd: str = TMP_MOUNT
    hostname: str = "sandbox"
    capabilities: tuple[str, ...] = ()  # none: every capability dropped

    @property
    def writable(self) -> tuple[str, ...]:
        """Where the program can write on the host: the destinations of its writable binds."""
        return tuple(m.dest for m in self.mounts if m.kind == "bind")


def base_env(threads: int) -> dict[str, str]:
    """The interpreter's environment in every run, sandboxed or not (the host's environment never passes)."""
    n = str(threads)
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "random",
        "PYTHONNOUSERSITE": "1",
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "NUMEXPR_NUM_THREADS": n,
        "LANG": "C.UTF-8",
    }


def check_extra_env(extra_env: dict[str, str]) -> None:
    """Raises ValueError for a variable that could carry a secret or change how the interpreter starts."""
    reserved = set(base_env(1)) | {"HOME", "TMPDIR", "PYTHONPATH"}
    for name, value in extra_env.items():
        upper = name.upper()
        if not _ENV_NAME.match(name) or not isinstance(value, str) or "\0" in value:
            raise ValueError(f"invalid environment variable {name!r}")
        if upper.startswith("DJANGO_") or any(word in upper for word in _FORBIDDEN_ENV_WORDS):
            raise ValueError(f"refusing to pass {name!r} into the sandbox: it looks like a setting or a secret")
        if name in reserved or upper.startswith(("LD_", "PYTHON")):
            raise ValueError(f"refusing to override {name!r}: the launcher sets the sandbox's interpreter environment")


def site_mounts(count: int) -> list[str]:
    return ["/opt/site" if i == 0 else f"/opt/site{i}" for i in range(count)]


def _host_root_entries() -> list[Mount]:
    """/bin, /lib, /lib64, /sbin as the host has them (symlinks on merged-usr)."""
    mounts: list[Mount] = []
    for name in ("/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(name):
            mounts.append(Mount("symlink", name, os.readlink(name)))
        elif os.path.isdir(name):
            mounts.append(Mount("ro-bind", name, name))
    return mounts


@dataclass(frozen=True)
class Folders:
    """The host folders a run gets as /data (read-only), /out and /tmp."""

    data: str
    out: str
    tmp: str


def policy_for(
    resolved: Resolved,
    folders: Folders | None,
    limits: Limits,
    threads: int,
    extra_env: dict[str, str] | None = None,
) -> SandboxPolicy:
    """The policy of one run: ``resolved``'s interpreter, site-packages and runner read-only, ``folders`` as
    /data, /out and /tmp, ``limits``, and the scrubbed environment plus ``extra_env`` (checked by the caller)."""
    sites = site_mounts(len(resolved.site_packages))
    mounts = [Mount("ro-bind", "/usr", "/usr"), *_host_root_entries()]
    if resolved.python_prefix is not None:
        mounts.append(Mount("ro-bind", resolved.python_prefix, resolved.python_prefix))
    mounts += [Mount("ro-bind", dest, src) for src, dest in zip(resolved.site_packages, sites, strict=True)]
    mounts.append(Mount("ro-bind", f"{RUNNER_MOUNT}/dp_runner", resolved.runner_dir))
    if folders is not None:
        mounts += [
            Mount("ro-bind", DATA_MOUNT, folders.data),
            Mount("bind", OUT_MOUNT, folders.out),
            Mount("bind", TMP_MOUNT, folders.tmp),
        ]
    else:  # preflight: nothing of the host's
        mounts += [Mount("tmpfs", DATA_MOUNT), Mount("tmpfs", OUT_MOUNT), Mount("tmpfs", TMP_MOUNT)]
    mounts += [Mount("proc", "/proc"), Mount("dev", "/dev"), Mount("tmpfs", "/dev/shm", size=limits.shm_bytes)]
    env = base_env(threads) | {
        "HOME": TMP_MOUNT,
        "TMPDIR": TMP_MOUNT,
        "PYTHONPATH": ":".join([RUNNER_MOUNT, *sites]),
    }
    return SandboxPolicy(
        uid=resolved.uid,
        gid=resolved.gid,
        mounts=tuple(mounts),
        env=env | dict(extra_env or {}),
        limits=limits,
    )
