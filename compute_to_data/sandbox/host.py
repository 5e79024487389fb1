"""Where the sandbox's ingredients live on the host (``SandboxConfig``), who the program runs as, and the check
that every ingredient is there and readable by that uid before anything starts (``resolve``)."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path


def _default_runner_dir() -> str:
    return str(Path(__file__).resolve().parent.parent / "runner")


@dataclass(frozen=True)
class SandboxConfig:
    """Where the sandbox's ingredients live on the host. Hashable: preflight results are cached per config."""

    bwrap: str = "bwrap"
    # An interpreter the sandbox uid can read, of the running interpreter's major.minor; None = autodetect.
    python: str | None = None
    # Bound read-only and put on PYTHONPATH; empty = the running environment's purelib/platlib.
    site_packages: tuple[str, ...] = ()
    # The runner package itself (the folder holding its __main__.py), bound as /opt/runner/dp_runner.
    runner_dir: str = field(default_factory=_default_runner_dir)
    # Root mode: each job runs as a uid (and gid) of its own, leased host-wide from uid_base .. uid_base+uid_count-1
    # (a range no account uses: never 65534) with a lock file per uid in lease_dir.
    uid_base: int = 620_000
    uid_count: int = 64
    lease_dir: str = "/run/lock/marketplace-sandbox"
    # Where a workspace that could not be removed is moved (root-only); "" = ".quarantine" in the work dir.
    quarantine_dir: str = ""
    # Root mode: size of the tmpfs holding a job's decrypted inputs (its writable space is a tmpfs of its own,
    # sized by the run's Limits).
    input_bytes: int = 16 << 30
    # Refuse to run (SandboxUnavailable) unless in root mode with per-job cgroups: production sets it.
    require_root_mode: bool = False
    threads: int = 2  # OMP/MKL/OPENBLAS/NUMEXPR_NUM_THREADS inside


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot start on this machine; the message says what to install or change."""


def running_as_root() -> bool:
    return os.geteuid() == 0


def sandbox_ids(config: SandboxConfig) -> tuple[int, int]:
    """A host uid/gid of the kind the sandboxed program runs as, to check what it can read: in root mode the pool's
    first (every pool uid is alike: no account, no group, owner of nothing on the host), else our own."""
    if running_as_root():
        return config.uid_base, config.uid_base
    return os.getuid(), os.getgid()


def _mode_allows(st: os.stat_result, uid: int, gid: int, want: int) -> bool:
    """Whether ``want`` (a mask of 4/2/1) is granted to a process of uid/gid without supplementary groups."""
    if st.st_uid == uid:
        bits = (st.st_mode >> 6) & 7
    elif st.st_gid == gid:
        bits = (st.st_mode >> 3) & 7
    else:
        bits = st.st_mode & 7
    return bits & want == want


def unreadable_part(path: str, uid: int, gid: int, want: int = 5) -> str | None:
    """The first component of ``path`` (as given and resolved) that uid/gid cannot search, or ``path`` itself when
    it lacks ``want`` (4 read, 1 search/execute), or a missing path; None when all is well.

    When we are not root the sandbox runs as our own uid, so ``os.access`` answers exactly."""
    if not os.path.exists(path):
        return path
    for candidate in dict.fromkeys((path, os.path.realpath(path))):
        for parent in reversed(Path(candidate).parents):
            if running_as_root():
                allowed = _mode_allows(os.stat(parent), uid, gid, 1)
            else:
                allowed = os.access(parent, os.X_OK)
            if not allowed:
                return str(parent)
        if running_as_root():
            allowed = _mode_allows(os.stat(candidate), uid, gid, want)
        else:
            allowed = os.access(candidate, (os.R_OK if want & 4 else 0) | (os.X_OK if want & 1 else 0))
        if not allowed:
            return candidate
    return None


@dataclass(frozen=True)
class Resolved:
    """A ``SandboxConfig`` checked against the host: absolute paths the sandbox uid can read."""

    bwrap: str
    python: str
    python_prefix: str | None  # bound read-only at the same path when the interpreter is not under /usr
    site_packages: tuple[str, ...]
    runner_dir: str
    uid: int
    gid: int


def _default_site_packages() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found: list[str] = []
    for key in ("purelib", "platlib"):
        real = os.path.realpath(paths[key])
        if os.path.isdir(real) and real not in found:
            found.append(real)
    return tuple(found)


def _interpreter_prefix(python: str) -> str | None:
    real = os.path.realpath(python)
    if real.startswith("/usr/"):
        return None
    prefix = str(Path(real).parent.parent)
    return None if prefix == "/" else prefix


def _python_candidates() -> list[str]:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return [str(Path(sys.base_prefix) / "bin" / version), f"/usr/bin/{version}", f"/usr/local/bin/{version}"]


def resolve(config: SandboxConfig) -> Resolved:
    """Checks that every ingredient exists and is readable by the sandbox uid; raises SandboxUnavailable if not."""
    bwrap = shutil.which(config.bwrap)
    if bwrap is None:
        raise SandboxUnavailable(
            f"bubblewrap ({config.bwrap!r}) is not installed or not on PATH: install it with "
            "`sudo apt-get install bubblewrap` (or `make system-deps`, or "
            "`bash scripts/ensure-system-deps.sh --runtime`)."
        )
    uid, gid = sandbox_ids(config)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"

    if config.python is not None:
        bad = unreadable_part(config.python, uid, gid)
        if bad is not None:
            raise SandboxUnavailable(
                f"The sandbox interpreter {config.python} cannot be read by uid {uid} ({bad} is missing or not "
                "readable/traversable): point SandboxConfig.python at a Python "
                f"{version} the sandbox uid can read, e.g. /usr/bin/python{version} (apt-get install python{version})."
            )
        python = config.python
    else:
        python = ""
        tried = []
        for candidate in _python_candidates():
            tried.append(candidate)
            if not os.path.isfile(candidate) or unreadable_part(candidate, uid, gid):
                continue
            stdlib = Path(sys.base_prefix) / "lib" / f"python{version}"
            if candidate.startswith(sys.base_prefix + "/") and (
                unreadable_part(str(stdlib), uid, gid, want=5) is not None
            ):
                continue
            python = candidate
            break
        if not python:
            raise SandboxUnavailable(
                f"No Python {version} interpreter readable by the sandbox uid {uid} was found (tried: "
                f"{', '.join(tried)}). The running interpreter's prefix {sys.base_prefix} is not readable by others; "
                f"install the system one (`apt-get install python{version}`) or set SandboxConfig.python."
            )
    prefix = _interpreter_prefix(python)
    if prefix is not None:
        bad = unreadable_part(prefix, uid, gid, want=5)
        if bad is not None:
            raise SandboxUnavailable(
                f"The interpreter prefix {prefix} is not readable by the sandbox uid {uid} ({bad}): make it "
                "world-readable (chmod -R o+rX) or use an interpreter under /usr."
            )

    site = tuple(os.path.realpath(p) for p in (config.site_packages or _default_site_packages()))
    for path in site:
        bad = unreadable_part(path, uid, gid, want=5)
        if bad is not None:
            raise SandboxUnavailable(
                f"The site-packages folder {path} cannot be read by the sandbox uid {uid} ({bad} is missing or not "
                "readable/traversable): give others read access (chmod o+rX on it and its parents, chmod -R o+rX "
                "on it) or create the virtual environment in a world-readable place."
            )
    runner = os.path.realpath(config.runner_dir)
    bad = unreadable_part(runner, uid, gid, want=5)
    if bad is not None:
        raise SandboxUnavailable(
            f"The runner package {runner} cannot be read by the sandbox uid {uid} ({bad} is missing or not "
            "readable/traversable): chmod -R o+rX it and its parents, or set SandboxConfig.runner_dir."
        )
    return Resolved(bwrap, python, prefix, site, runner, uid, gid)
