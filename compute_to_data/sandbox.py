"""Launches one compute-to-data job in a fresh bubblewrap sandbox and reports how it ended.

No Django here: everything comes in as arguments, so the launcher can be tested and benchmarked alone.

Layout inside the sandbox (``isolation="bubblewrap"``)::

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
the kernel kills whatever it left behind). When the worker is root it drops to ``SandboxConfig.sandbox_uid``
before starting bwrap (RLIMIT_NPROC is not enforced for root, and root-owned files bound in would stay readable);
an unprivileged worker runs the sandbox under its own uid.

Paths in the spec: take them from ``Workspace.paths(isolation)``. With ``bubblewrap`` they are /data, /out and
/tmp; with ``none`` they are the workspace's host folders.

``isolation="none"`` runs the same interpreter, with the same rlimits, uid and scrubbed environment, straight on
the host (PYTHONPATH: a ``dp_runner`` link in the workspace, then the site-packages; /data, /out, /tmp leading
``argv`` items and ``extra_env`` values become the host folders). It exists only to measure what the sandbox
costs and must never run real jobs: the program sees the host's files and network, and a process that leaves
its process group survives the run.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import resource
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

DATA_MOUNT = "/data"
OUT_MOUNT = "/out"
TMP_MOUNT = "/tmp"
RUNNER_MOUNT = "/opt/runner"
ISOLATIONS = ("bubblewrap", "none")

MAX_EVENT_LINE = 64 << 10
STDERR_TAIL_BYTES = 2048
EVENTS_PER_SECOND = 20.0
MAX_ERROR_EVENTS = 100
MAX_BACKLOG_EVENTS = 1000
MAX_BACKLOG_BYTES = 4 << 20
POLL_SECONDS = 0.1
CANCEL_POLL_SECONDS = 0.25
READER_JOIN_SECONDS = 5.0

_FORBIDDEN_ENV_WORDS = ("SECRET", "KEY", "TOKEN", "PASSWORD")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_KEY_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_PYTHON_NAMES = ("python", "python3", f"python{sys.version_info.major}.{sys.version_info.minor}")


def _default_runner_dir() -> str:
    return str(Path(__file__).resolve().parent / "runner")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. All rlimits apply per process; wall clock and disk to the whole sandbox."""

    memory_bytes: int = 4 << 30  # RLIMIT_AS
    # RLIMIT_CPU soft (SIGXCPU); hard = soft + 5 (SIGKILL). The program itself is pid 1 of its namespace, where
    # an unhandled SIGXCPU is ignored, so the launcher also stops it when its own CPU time reaches the soft limit.
    cpu_seconds: int = 600
    file_size_bytes: int = 256 << 20  # RLIMIT_FSIZE (capped at disk_bytes)
    # RLIMIT_NPROC: tasks (threads included). The kernel also counts every task of the same host uid against it,
    # so concurrent sandboxes of one uid (or an unprivileged worker's own processes) share this number.
    processes: int = 64
    open_files: int = 256  # RLIMIT_NOFILE
    wall_seconds: float = 900  # the launcher kills the sandbox after this
    # Allocated bytes under /out + /tmp, checked by a watchdog about every 0.1 s: a fast writer can overshoot by
    # what it writes in one interval before it is killed.
    disk_bytes: int = 512 << 20
    files: int = 10_000  # files and folders under /out + /tmp, checked by the same watchdog
    shm_bytes: int = 64 << 20  # size of the private /dev/shm tmpfs (memory outside RLIMIT_AS)


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
    sandbox_uid: int = 65534  # used only when the worker is root
    sandbox_gid: int = 65534
    threads: int = 2  # OMP/MKL/OPENBLAS/NUMEXPR_NUM_THREADS inside


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot start on this machine; the message says what to install or change."""


@dataclass(frozen=True)
class Outcome:
    """How a run ended. ``reason`` is safe to show to the buyer; ``stderr_tail`` is for operators' logs only."""

    ok: bool
    exit_code: int | None
    signal: int | None
    limit: str | None  # wall_clock | cpu | memory | file_size | processes | disk | cancelled | None
    reason: str
    wall_seconds: float
    stderr_tail: str


# --------------------------------------------------------------------------------------------- identities & paths


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _sandbox_ids(config: SandboxConfig) -> tuple[int, int]:
    """The host uid/gid the sandboxed program runs as."""
    if _running_as_root():
        return config.sandbox_uid, config.sandbox_gid
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


def _unreadable_part(path: str, uid: int, gid: int, want: int = 5) -> str | None:
    """The first component of ``path`` (as given and resolved) that uid/gid cannot search, or ``path`` itself when
    it lacks ``want`` (4 read, 1 search/execute), or a missing path; None when all is well.

    When we are not root the sandbox runs as our own uid, so ``os.access`` answers exactly."""
    if not os.path.exists(path):
        return path
    for candidate in dict.fromkeys((path, os.path.realpath(path))):
        for parent in reversed(Path(candidate).parents):
            if _running_as_root():
                allowed = _mode_allows(os.stat(parent), uid, gid, 1)
            else:
                allowed = os.access(parent, os.X_OK)
            if not allowed:
                return str(parent)
        if _running_as_root():
            allowed = _mode_allows(os.stat(candidate), uid, gid, want)
        else:
            allowed = os.access(candidate, (os.R_OK if want & 4 else 0) | (os.X_OK if want & 1 else 0))
        if not allowed:
            return candidate
    return None


@dataclass(frozen=True)
class _Resolved:
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


def _resolve(config: SandboxConfig) -> _Resolved:
    """Checks that every ingredient exists and is readable by the sandbox uid; raises SandboxUnavailable if not."""
    bwrap = shutil.which(config.bwrap)
    if bwrap is None:
        raise SandboxUnavailable(
            f"bubblewrap ({config.bwrap!r}) is not installed or not on PATH: install it with "
            "`sudo apt-get install bubblewrap` (or `make system-deps`, or "
            "`bash scripts/ensure-system-deps.sh --runtime`)."
        )
    uid, gid = _sandbox_ids(config)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"

    if config.python is not None:
        bad = _unreadable_part(config.python, uid, gid)
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
            if not os.path.isfile(candidate) or _unreadable_part(candidate, uid, gid):
                continue
            stdlib = Path(sys.base_prefix) / "lib" / f"python{version}"
            if candidate.startswith(sys.base_prefix + "/") and (
                _unreadable_part(str(stdlib), uid, gid, want=5) is not None
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
        bad = _unreadable_part(prefix, uid, gid, want=5)
        if bad is not None:
            raise SandboxUnavailable(
                f"The interpreter prefix {prefix} is not readable by the sandbox uid {uid} ({bad}): make it "
                "world-readable (chmod -R o+rX) or use an interpreter under /usr."
            )

    site = tuple(os.path.realpath(p) for p in (config.site_packages or _default_site_packages()))
    for path in site:
        bad = _unreadable_part(path, uid, gid, want=5)
        if bad is not None:
            raise SandboxUnavailable(
                f"The site-packages folder {path} cannot be read by the sandbox uid {uid} ({bad} is missing or not "
                "readable/traversable): give others read access (chmod o+rX on it and its parents, chmod -R o+rX "
                "on it) or create the virtual environment in a world-readable place."
            )
    runner = os.path.realpath(config.runner_dir)
    bad = _unreadable_part(runner, uid, gid, want=5)
    if bad is not None:
        raise SandboxUnavailable(
            f"The runner package {runner} cannot be read by the sandbox uid {uid} ({bad} is missing or not "
            "readable/traversable): chmod -R o+rX it and its parents, or set SandboxConfig.runner_dir."
        )
    return _Resolved(bwrap, python, prefix, site, runner, uid, gid)


# ----------------------------------------------------------------------------------------------------- workspace


class Workspace:
    """A job's folder on the host: ``input/`` (read-only /data), ``out/`` (/out) and ``tmp/`` (private /tmp).

    Everything is owned by the sandbox uid (when we are root) with mode 0700, so other local users see nothing.
    The sandbox writes ``out/`` and ``tmp/``: treat their contents as hostile (symlinks, odd modes, many files);
    read results only through ``output_files``/``open_output``."""

    def __init__(self, root: Path, uid: int, gid: int) -> None:
        self.root = root
        self.input_dir = root / "input"
        self.output_dir = root / "out"
        self.tmp_dir = root / "tmp"
        self._uid = uid
        self._gid = gid

    def paths(self, isolation: str) -> dict[str, str]:
        """The paths the program must use for its input, output and temporary folders, per isolation mode.

        Write the spec with these: ``bubblewrap`` gives /data, /out, /tmp; ``none`` gives the host folders."""
        if isolation == "bubblewrap":
            return {"data": DATA_MOUNT, "out": OUT_MOUNT, "tmp": TMP_MOUNT}
        if isolation == "none":
            return {"data": str(self.input_dir), "out": str(self.output_dir), "tmp": str(self.tmp_dir)}
        raise ValueError(f"unknown isolation {isolation!r}")

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
            if _running_as_root():
                os.fchown(fh.fileno(), self._uid, self._gid)
            os.fchmod(fh.fileno(), 0o400)
        return path

    def output_files(self) -> list[str]:
        """Names of the regular files directly under ``out/``; symlinks, folders and devices are left out."""
        names = []
        with os.scandir(self.output_dir) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    names.append(entry.name)
        return sorted(names)

    def open_output(self, name: str) -> BinaryIO:
        """Opens ``out/<name>`` for reading without following symlinks; refuses anything but a regular file."""
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"output name must be a plain file name, got {name!r}")
        dir_fd = os.open(self.output_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, f"{name} is not a regular file")
        return os.fdopen(fd, "rb")


def _ensure_base(base: Path) -> None:
    if not base.exists():
        base.mkdir(mode=0o711, parents=True, exist_ok=True)
        os.chmod(base, 0o711)  # noqa: S103 - others may only traverse; mkdir's mode is filtered by the umask


def _make_private_dir(path: Path, uid: int, gid: int) -> None:
    path.mkdir(mode=0o700)
    if _running_as_root():
        os.chown(path, uid, gid)


def _rmtree_fixing_permissions(root: Path) -> None:
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


@contextmanager
def workspace(base: Path, key: str, config: SandboxConfig) -> Iterator[Workspace]:
    """Creates ``base/<key>-<random>/`` with input/, out/ and tmp/ and removes it at exit, exceptions included.

    ``base`` is created with mode 0711 when missing; it and its parents must be traversable by the sandbox uid
    (pytest's tmp_path is not: it is 0700 under /tmp/pytest-of-<user>). Removal errors are logged, not raised."""
    base = Path(base)
    _ensure_base(base)
    uid, gid = _sandbox_ids(config)
    bad = _unreadable_part(str(base), uid, gid, want=1)
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
            _rmtree_fixing_permissions(root)
        except OSError:
            logger.exception("Could not remove the sandbox workspace %s", root)


# ----------------------------------------------------------------------------------------------------- preflight

_preflight_ok: set[SandboxConfig] = set()
_preflight_lock = threading.Lock()

_USERNS_HINTS = (
    "No permission to create new namespace",
    "Creating new namespace failed",
    "setting up uid map",
    "Operation not permitted",
    "Permission denied",
)


def sandbox_preflight(config: SandboxConfig) -> None:
    """Starts one trivial Python in a sandbox; raises SandboxUnavailable with what to fix. Cached per config."""
    with _preflight_lock:
        if config in _preflight_ok:
            return
    resolved = _resolve(config)
    code = "import sys; print('%d.%d' % sys.version_info[:2])"
    argv = [*_bwrap_argv(resolved, None, Limits(), config.threads, {}), resolved.python, "-c", code]
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin"},
            cwd="/",
            **_drop_kwargs(resolved),
            preexec_fn=_rlimit_setter(Limits()),
        )
    except subprocess.TimeoutExpired:
        raise SandboxUnavailable("A trivial Python in the sandbox did not finish within 60 s.")
    stderr = done.stderr.decode("utf-8", "replace").strip()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if done.returncode != 0:
        if stderr.startswith("bwrap:") and any(hint in stderr for hint in _USERNS_HINTS):
            raise SandboxUnavailable(
                f"bubblewrap cannot create its namespaces ({stderr[-300:]}). Unprivileged user namespaces must be "
                "enabled: sysctl user.max_user_namespaces > 0 (and kernel.unprivileged_userns_clone=1 on older "
                "Debian kernels, kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 24.04+); in Docker run "
                "the worker with seccomp=unconfined and apparmor=unconfined."
            )
        raise SandboxUnavailable(
            f"A trivial Python ({resolved.python}) failed in the sandbox with status {done.returncode}: {stderr[-500:]}"
        )
    got = done.stdout.decode("ascii", "replace").strip()
    if got != version:
        raise SandboxUnavailable(
            f"The sandbox interpreter {resolved.python} is Python {got}, but the site-packages belong to Python "
            f"{version}: set SandboxConfig.python to a Python {version}."
        )
    with _preflight_lock:
        _preflight_ok.add(config)


# -------------------------------------------------------------------------------------------- command & process


def _site_mounts(count: int) -> list[str]:
    return ["/opt/site" if i == 0 else f"/opt/site{i}" for i in range(count)]


def _base_env(threads: int) -> dict[str, str]:
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


def _check_extra_env(extra_env: dict[str, str]) -> None:
    reserved = set(_base_env(1)) | {"HOME", "TMPDIR", "PYTHONPATH"}
    for name, value in extra_env.items():
        upper = name.upper()
        if not _ENV_NAME.match(name) or not isinstance(value, str) or "\0" in value:
            raise ValueError(f"invalid environment variable {name!r}")
        if upper.startswith("DJANGO_") or any(word in upper for word in _FORBIDDEN_ENV_WORDS):
            raise ValueError(f"refusing to pass {name!r} into the sandbox: it looks like a setting or a secret")
        if name in reserved or upper.startswith(("LD_", "PYTHON")):
            raise ValueError(f"refusing to override {name!r}: the launcher sets the sandbox's interpreter environment")


def _host_root_entries() -> list[str]:
    """bwrap arguments recreating /bin, /lib, /lib64, /sbin as the host has them (symlinks on merged-usr)."""
    args: list[str] = []
    for name in ("/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    return args


def _bwrap_argv(
    resolved: _Resolved,
    ws: Workspace | None,
    limits: Limits,
    threads: int,
    extra_env: dict[str, str],
    status_fd: int | None = None,
) -> list[str]:
    """The bwrap command line up to its ``--``; the program's argv follows it."""
    site_mounts = _site_mounts(len(resolved.site_packages))
    argv = [
        resolved.bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        # The program is the namespace's pid 1: when it ends, the kernel kills everything left inside, and no
        # intermediate bwrap is orphaned to the host's init (which may never reap it, e.g. in a container).
        "--as-pid-1",
        "--clearenv",
        "--uid",
        str(resolved.uid),
        "--gid",
        str(resolved.gid),
        "--cap-drop",
        "ALL",
        "--hostname",
        "sandbox",
        "--ro-bind",
        "/usr",
        "/usr",
        *_host_root_entries(),
    ]
    if resolved.python_prefix is not None:
        argv += ["--ro-bind", resolved.python_prefix, resolved.python_prefix]
    for src, dest in zip(resolved.site_packages, site_mounts, strict=True):
        argv += ["--ro-bind", src, dest]
    argv += ["--ro-bind", resolved.runner_dir, f"{RUNNER_MOUNT}/dp_runner"]
    if ws is not None:
        argv += ["--ro-bind", str(ws.input_dir), DATA_MOUNT, "--bind", str(ws.output_dir), OUT_MOUNT]
        argv += ["--bind", str(ws.tmp_dir), TMP_MOUNT]
    else:  # preflight: nothing of the host's
        argv += ["--tmpfs", DATA_MOUNT, "--tmpfs", OUT_MOUNT, "--tmpfs", TMP_MOUNT]
    argv += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(limits.shm_bytes),
        "--tmpfs",
        "/dev/shm",
        # /dev and / are tmpfs the sandbox uid owns: read-only, so nothing can be parked in memory there.
        "--remount-ro",
        "/dev",
        "--remount-ro",
        "/",
        "--chdir",
        TMP_MOUNT,
    ]
    env = _base_env(threads) | {
        "HOME": TMP_MOUNT,
        "TMPDIR": TMP_MOUNT,
        "PYTHONPATH": ":".join([RUNNER_MOUNT, *site_mounts]),
    }
    env |= extra_env
    for name, value in env.items():
        argv += ["--setenv", name, value]
    if status_fd is not None:
        argv += ["--json-status-fd", str(status_fd)]
    argv.append("--")
    return argv


def _rlimit_setter(limits: Limits) -> Callable[[], None]:
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


def _drop_kwargs(resolved: _Resolved) -> dict[str, object]:
    """Popen arguments that switch to the sandbox uid in the child (in C, before preexec_fn) when we are root."""
    if not _running_as_root():
        return {}
    return {"user": resolved.uid, "group": resolved.gid, "extra_groups": []}


def _program_argv(argv: list[str], python: str) -> list[str]:
    """``argv`` with a leading ``python``/``python3``/``python3.X`` replaced by the sandbox interpreter."""
    if not argv:
        raise ValueError("argv must name a program")
    if argv[0] in _PYTHON_NAMES:
        return [python, *argv[1:]]
    return list(argv)


def _to_host_path(value: str, ws: Workspace) -> str:
    if value == str(ws.root) or value.startswith(str(ws.root) + "/"):
        return value  # already a host path of this workspace (which may itself live under /tmp)
    for mount, host in ((DATA_MOUNT, ws.input_dir), (OUT_MOUNT, ws.output_dir), (TMP_MOUNT, ws.tmp_dir)):
        if value == mount or value.startswith(mount + "/"):
            return str(host) + value[len(mount) :]
    return value


class _EventGate:
    """Paces runner events for the caller: "error" events pass at once; other events queue (bounded) and leave at
    about 20 per second; "progress" events coalesce into the latest one, which is never lost."""

    def __init__(self, rate: float = EVENTS_PER_SECOND) -> None:
        self._rate = rate
        self._tokens = rate
        self._stamp = time.monotonic()
        self._lock = threading.Lock()
        self._ready: deque[dict] = deque()
        self._backlog: deque[tuple[dict, int]] = deque()
        self._backlog_bytes = 0
        self._held_progress: dict | None = None
        self._errors = 0
        self.dropped = 0
        self.last_error: dict | None = None

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self._rate, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def offer(self, event: dict, size: int) -> None:
        with self._lock:
            kind = event.get("event")
            if kind == "error":
                self.last_error = event
                self._errors += 1
                if self._errors <= MAX_ERROR_EVENTS:
                    self._ready.append(event)
                else:
                    self.dropped += 1
            elif kind == "progress":
                self._held_progress = event
            elif len(self._backlog) < MAX_BACKLOG_EVENTS and self._backlog_bytes + size <= MAX_BACKLOG_BYTES:
                self._backlog.append((event, size))
                self._backlog_bytes += size
            else:
                self.dropped += 1

    def take(self, *, final: bool = False) -> list[dict]:
        """The events due now; with ``final`` everything still waiting."""
        with self._lock:
            self._refill()
            while self._backlog and (final or self._tokens >= 1):
                event, size = self._backlog.popleft()
                self._backlog_bytes -= size
                self._tokens -= 1
                self._ready.append(event)
            if self._held_progress is not None and (final or self._tokens >= 1):
                self._tokens -= 1
                self._ready.append(self._held_progress)
                self._held_progress = None
            out = list(self._ready)
            self._ready.clear()
            return out


def _parse_event(line: bytes) -> dict | None:
    try:
        event = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting within 64 KiB overflows the parser
        return None
    if isinstance(event, dict) and isinstance(event.get("event"), str):
        return event
    return None


def _read_events(stream: BinaryIO, gate: _EventGate) -> None:
    """Splits stdout into lines without ever buffering more than one line of MAX_EVENT_LINE bytes."""
    line = bytearray()
    overlong = False
    while chunk := stream.read(65536):
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
            piece = chunk[start:] if newline < 0 else chunk[start:newline]
            if not overlong:
                line += piece
                if len(line) > MAX_EVENT_LINE:
                    overlong = True
                    line.clear()
            if newline < 0:
                break
            if not overlong and (event := _parse_event(bytes(line))) is not None:
                gate.offer(event, len(line))
            line.clear()
            overlong = False
            start = newline + 1
    stream.close()


class _Tail:
    def __init__(self, size: int = STDERR_TAIL_BYTES) -> None:
        self._size = size
        self._buf = bytearray()
        self._lock = threading.Lock()

    def read_from(self, stream: BinaryIO) -> None:
        while chunk := stream.read(65536):
            with self._lock:
                self._buf += chunk[-self._size :]
                del self._buf[: max(0, len(self._buf) - self._size)]
        stream.close()

    def text(self) -> str:
        with self._lock:
            return bytes(self._buf).decode("utf-8", "replace")


class _Status:
    """Reads bwrap's --json-status-fd: the host pid of the sandboxed program (pid 1 of the sandbox)."""

    def __init__(self) -> None:
        self.child_pid: int | None = None
        self.known = threading.Event()  # set once the pid is known, or when bwrap closed the pipe without it

    def read_from(self, fd: int) -> None:
        data = b""
        with open(fd, "rb", buffering=0) as stream:
            while chunk := stream.read(4096):
                data = (data + chunk)[-65536:]
                for line in data.split(b"\n"):
                    with contextlib.suppress(ValueError):
                        document = json.loads(line)
                        pid = document.get("child-pid") if isinstance(document, dict) else None
                        if self.child_pid is None and isinstance(pid, int):
                            self.child_pid = pid
                            self.known.set()
        self.known.set()


def _disk_usage(folders: Iterable[Path], max_bytes: int, max_entries: int) -> tuple[int, int]:
    """Allocated bytes and entries under ``folders`` without following symlinks; stops early once over a limit."""
    total = entries = 0
    stack = [str(f) for f in folders]
    while stack:
        try:
            iterator = os.scandir(stack.pop())
        except OSError:
            continue
        with iterator:
            for entry in iterator:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                entries += 1
                # Sparse files count at their apparent size: the caller may copy them out.
                total += max(st.st_blocks * 512, st.st_size if stat.S_ISREG(st.st_mode) else 0)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
                if total > max_bytes or entries > max_entries:
                    return total, entries
    return total, entries


def _human_bytes(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


_MEMORY_MARKERS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")
_PROCESS_MARKERS = ("Resource temporarily unavailable", "BlockingIOError", "can't start new thread")
_FILE_SIZE_MARKERS = ("File too large", "[Errno 27]")


def _classify(
    *,
    killed_for: str | None,
    exit_code: int | None,
    sig: int | None,
    cpu_used: float,
    stderr_tail: str,
    last_error: dict | None,
    limits: Limits,
) -> tuple[str | None, str]:
    """Maps how the process ended to (limit, reason)."""
    code = str(last_error.get("code", "")) if last_error else ""
    if killed_for == "wall_clock":
        return killed_for, f"The job exceeded its wall-clock limit of {limits.wall_seconds:g} s and was stopped."
    if killed_for == "cancelled":
        return killed_for, "The job was cancelled."
    if killed_for == "cpu":
        return killed_for, f"The job exceeded its CPU-time limit of {limits.cpu_seconds} s and was stopped."
    if killed_for == "disk":
        return killed_for, (
            f"The job wrote more than {_human_bytes(limits.disk_bytes)} (or more than {limits.files} files) to its "
            "output and temporary folders and was stopped."
        )
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_used >= limits.cpu_seconds) or code == "cpu":
        return "cpu", f"The job exceeded its CPU-time limit of {limits.cpu_seconds} s and was stopped."
    if sig == signal.SIGXFSZ or code == "file_size" or any(m in stderr_tail for m in _FILE_SIZE_MARKERS):
        return "file_size", (
            f"The job tried to write a file larger than {_human_bytes(min(limits.file_size_bytes, limits.disk_bytes))}."
        )
    if code == "memory" or any(m in stderr_tail for m in _MEMORY_MARKERS):
        return "memory", f"The job ran out of memory (limit {_human_bytes(limits.memory_bytes)})."
    if code == "processes" or any(m in stderr_tail for m in _PROCESS_MARKERS):
        return "processes", f"The job tried to run more than {limits.processes} processes or threads."
    if last_error is not None and isinstance(last_error.get("message"), str) and last_error["message"].strip():
        message = " ".join(last_error["message"].split())
        return None, message[:300]
    if sig is not None:
        return None, f"The runner was killed by {_signal_name(sig)}."
    if stderr_tail.startswith("bwrap:"):
        return None, "The sandbox could not be started."
    return None, f"The runner stopped with exit status {exit_code}."


def _exited(pid: int, pidfd: int | None, timeout: float) -> bool:
    """Waits up to ``timeout`` for the child to exit, without reaping it (its pid keeps naming our process group)."""
    if pidfd is not None:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(timeout * 1000):
            return False
    else:
        time.sleep(timeout)
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _proc_stat(pid: int) -> list[bytes]:
    """The fields of /proc/<pid>/stat after the command name (field 3, the state, comes first); [] if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _parent_of(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[1]) if len(fields) > 1 else None


def _cpu_seconds_of(pid: int, parent: int) -> float:
    """User + system CPU time of one process (all its threads); 0 unless it is still ``parent``'s child."""
    fields = _proc_stat(pid)
    if len(fields) < 13 or int(fields[1]) != parent:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stop(pid: int, pidfd: int | None, status: _Status | None) -> None:
    """Kills the run; the leader ``pid`` must not be reaped yet, so its pid still names our process group.

    In a sandbox the program (pid 1 inside) goes first: the kernel then kills the whole namespace and bwrap reaps
    it and exits, leaving no orphan. The group kill follows in any case (bwrap itself, or ``none`` isolation)."""
    if status is not None and not _exited(pid, None, 0):
        status.known.wait(1.0)  # a run stopped right at its start: bwrap reports the pid within milliseconds
    child_pid = status.child_pid if status is not None else None
    if child_pid is not None and not _exited(pid, None, 0) and _parent_of(child_pid) == pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child_pid, signal.SIGKILL)
        deadline = time.monotonic() + 1.0
        while not _exited(pid, pidfd, 0.05) and time.monotonic() < deadline:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def sandbox_run(
    *,
    config: SandboxConfig,
    workspace: Workspace,
    argv: list[str],
    limits: Limits,
    on_event: Callable[[dict], None],
    should_cancel: Callable[[], bool] = lambda: False,
    isolation: str = "bubblewrap",
    extra_env: dict[str, str] | None = None,
) -> Outcome:
    """Runs ``argv`` (e.g. ``["python3", "-m", "dp_runner", "/data/spec.json"]``; a leading ``python``, ``python3``
    or ``python3.X`` means the sandbox interpreter) and returns how it ended. Blocks until the run's processes are
    gone (in ``none`` isolation only its process group is killed).

    ``on_event`` and ``should_cancel`` are called from the calling thread (safe for Django's per-thread
    connections): events at most ~20 per second (every "error" event and the last "progress" always arrive),
    ``should_cancel`` about four times a second. Exceptions they raise kill the sandbox and propagate.
    ``isolation="none"`` is for benchmarks only (see the module docstring); /data, /out and /tmp at the start of
    ``argv`` items and ``extra_env`` values are then replaced by the workspace's host folders.
    Raises SandboxUnavailable when the sandbox cannot start, ValueError for a refused ``extra_env``."""
    if isolation not in ISOLATIONS:
        raise ValueError(f"unknown isolation {isolation!r}")
    extra_env = dict(extra_env or {})
    _check_extra_env(extra_env)
    status_read = status_write = -1
    if isolation == "bubblewrap":
        sandbox_preflight(config)
        resolved = _resolve(config)
        program = _program_argv(argv, resolved.python)
        status_read, status_write = os.pipe()
        command = _bwrap_argv(resolved, workspace, limits, config.threads, extra_env, status_write) + program
        env = {"PATH": "/usr/bin:/bin"}
        cwd = "/"
    else:
        resolved = _resolve(config)
        runner_parent = workspace.root / "runner"
        if not runner_parent.exists():
            runner_parent.mkdir(mode=0o755)
            (runner_parent / "dp_runner").symlink_to(resolved.runner_dir)
        command = [_to_host_path(a, workspace) for a in _program_argv(argv, resolved.python)]
        env = _base_env(config.threads) | {
            "HOME": str(workspace.tmp_dir),
            "TMPDIR": str(workspace.tmp_dir),
            "PYTHONPATH": ":".join([str(runner_parent), *resolved.site_packages]),
        }
        env |= {name: _to_host_path(value, workspace) for name, value in extra_env.items()}
        cwd = str(workspace.tmp_dir)

    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            env=env,
            cwd=cwd,
            start_new_session=True,
            umask=0o077,
            pass_fds=(status_write,) if status_write >= 0 else (),
            **_drop_kwargs(resolved),
            preexec_fn=_rlimit_setter(limits),
        )
    except BaseException:
        for fd in (status_read, status_write):
            if fd >= 0:
                os.close(fd)
        raise
    if status_write >= 0:
        os.close(status_write)
    assert proc.stdout is not None and proc.stderr is not None
    gate = _EventGate()
    tail = _Tail()
    status_info = _Status()
    readers = [
        threading.Thread(target=_read_events, args=(proc.stdout, gate), name="sandbox-stdout", daemon=True),
        threading.Thread(target=tail.read_from, args=(proc.stderr,), name="sandbox-stderr", daemon=True),
    ]
    if status_read >= 0:
        readers.append(threading.Thread(target=status_info.read_from, args=(status_read,), daemon=True))
    for reader in readers:
        reader.start()
    try:
        pidfd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = None

    killed_for: str | None = None
    status = 0
    cpu_used = 0.0
    try:
        deadline = started + limits.wall_seconds
        next_cancel = next_disk = started
        folders = (workspace.output_dir, workspace.tmp_dir)
        while not _exited(proc.pid, pidfd, POLL_SECONDS):
            for event in gate.take():
                on_event(event)
            now = time.monotonic()
            if now >= deadline:
                killed_for = "wall_clock"
                break
            if now >= next_cancel:
                next_cancel = now + CANCEL_POLL_SECONDS
                if should_cancel():
                    killed_for = "cancelled"
                    break
            child = status_info.child_pid
            if child is not None and _cpu_seconds_of(child, proc.pid) >= limits.cpu_seconds:
                killed_for = "cpu"
                break
            if now >= next_disk:
                used, entries = _disk_usage(folders, limits.disk_bytes, limits.files)
                # A big tree takes a while to scan: keep the watchdog under ~20% of a core.
                next_disk = now + 4 * (time.monotonic() - now)
                if used > limits.disk_bytes or entries > limits.files:
                    killed_for = "disk"
                    break
    finally:
        _stop(proc.pid, pidfd, status_info if isolation == "bubblewrap" else None)
        _, status, usage = os.wait4(proc.pid, 0)
        cpu_used = usage.ru_utime + usage.ru_stime
        proc.returncode = os.waitstatus_to_exitcode(status)
        if pidfd is not None:
            os.close(pidfd)
        # EOF on the pipes means every process that inherited them (the whole pid namespace) is gone.
        for reader in readers:
            reader.join(READER_JOIN_SECONDS)
        if any(reader.is_alive() for reader in readers):
            logger.warning("Sandbox pipes still open %.0f s after the run ended", READER_JOIN_SECONDS)
    for event in gate.take(final=True):
        on_event(event)
    elapsed = time.monotonic() - started

    if killed_for is None:
        used, entries = _disk_usage((workspace.output_dir, workspace.tmp_dir), limits.disk_bytes, limits.files)
        if used > limits.disk_bytes or entries > limits.files:
            killed_for = "disk"

    exit_code: int | None = None
    sig: int | None = None
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
    else:
        exit_code = os.WEXITSTATUS(status)
        # bwrap reports a program killed by signal N as exit status 128 + N.
        if isolation == "bubblewrap" and 128 < exit_code < 128 + 65:
            sig, exit_code = exit_code - 128, None
    stderr_tail = tail.text()
    if killed_for is None and exit_code == 0:
        return Outcome(True, 0, None, None, "", elapsed, stderr_tail)
    limit, reason = _classify(
        killed_for=killed_for,
        exit_code=exit_code,
        sig=sig,
        cpu_used=cpu_used,
        stderr_tail=stderr_tail,
        last_error=gate.last_error,
        limits=limits,
    )
    return Outcome(False, exit_code, sig, limit, reason, elapsed, stderr_tail)
