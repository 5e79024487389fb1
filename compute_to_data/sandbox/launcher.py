"""Starting a program: a ``SandboxPolicy`` rendered as a bubblewrap command line, the switch to the sandbox uid
(in the child, before exec) and the rlimits, plus the preflight that proves a trivial sandbox starts here.

When the worker is root (root mode) the child joins the run's cgroup, then drops to the job's leased uid before
it execs bwrap (RLIMIT_NPROC is not enforced for root, and root-owned files bound in would stay readable); an
unprivileged worker runs the sandbox under its own uid with rlimits only, which preflight says once in the log.
In every mode bwrap loads the seccomp filter (``seccomp``) right before it execs the program."""

from __future__ import annotations

import dataclasses
import logging
import os
import resource
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from . import seccomp
from .cgroup import cgroups_available
from .host import SandboxConfig, SandboxUnavailable, resolve, running_as_root
from .limits import Limits, rlimit_setter
from .policy import ALL_NAMESPACES, SandboxPolicy, policy_for
from .uids import check_pool, lease_uid

logger = logging.getLogger(__name__)

_PYTHON_NAMES = ("python", "python3", f"python{sys.version_info.major}.{sys.version_info.minor}")


def bwrap_argv(
    bwrap: str, policy: SandboxPolicy, status_fd: int | None = None, seccomp_fd: int | None = None
) -> list[str]:
    """The bwrap command line of ``policy`` up to its ``--``; the program's argv follows it."""
    if policy.namespaces == ALL_NAMESPACES:
        argv = [bwrap, "--unshare-all", "--unshare-user"]  # --unshare-all alone only tries the user namespace
    else:
        argv = [bwrap, *(f"--unshare-{name}" for name in sorted(policy.namespaces))]
    if not policy.nested_user_namespaces:
        argv.append("--disable-userns")
    argv += [
        "--die-with-parent",
        "--new-session",
        # The program is the namespace's pid 1: when it ends, the kernel kills everything left inside, and no
        # intermediate bwrap is orphaned to the host's init (which may never reap it, e.g. in a container).
        "--as-pid-1",
        "--clearenv",
        "--uid",
        str(policy.uid),
        "--gid",
        str(policy.gid),
        "--cap-drop",
        "ALL",
    ]
    for capability in policy.capabilities:
        argv += ["--cap-add", capability]
    argv += ["--hostname", policy.hostname]
    for mount in policy.mounts:
        if mount.kind in ("ro-bind", "bind"):
            argv += [f"--{mount.kind}", mount.source, mount.dest]
        elif mount.kind == "symlink":
            argv += ["--symlink", mount.source, mount.dest]
        elif mount.kind == "tmpfs":
            if mount.size is not None:
                argv += ["--size", str(mount.size)]
            argv += ["--tmpfs", mount.dest]
        else:  # proc, dev
            argv += [f"--{mount.kind}", mount.dest]
    for path in policy.read_only:
        argv += ["--remount-ro", path]
    argv += ["--chdir", policy.cwd]
    for name, value in policy.env.items():
        argv += ["--setenv", name, value]
    if status_fd is not None:
        argv += ["--json-status-fd", str(status_fd)]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    argv.append("--")
    return argv


def child_setup(
    limits: Limits, *, ids: tuple[int, int] | None, procs_files: tuple[str, ...] = ()
) -> Callable[[], None]:
    """The preexec_fn of a run, in this order: join the run's cgroup (``procs_files``: "0" is the writer itself),
    set the rlimits, and drop to ``ids`` (uid, gid; no supplementary groups) when given. Only system calls run
    between fork and exec (safe enough, unlike arbitrary Python).

    With a cgroup, memory and the process count are the cgroup's (over the whole tree, with the kernel's own
    account of why a run ended): RLIMIT_AS is lifted (libraries reserve address space they never touch), and
    so is RLIMIT_NPROC (to the worker's own hard limit: raising past it needs CAP_SYS_RESOURCE): pids.max
    bounds the whole tree, and a per-uid count beside it could refuse a fork first (it also counts tasks of the
    uid that are still exiting) without the cgroup recording why."""
    if procs_files:
        nproc_hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        limits = dataclasses.replace(limits, memory_bytes=resource.RLIM_INFINITY, processes=nproc_hard)
    set_rlimits = rlimit_setter(limits)

    def setup() -> None:
        for path in procs_files:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        set_rlimits()
        if ids is not None:
            uid, gid = ids
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)

    return setup


def program_argv(argv: list[str], python: str) -> list[str]:
    """``argv`` with a leading ``python``/``python3``/``python3.X`` replaced by the sandbox interpreter."""
    if not argv:
        raise ValueError("argv must name a program")
    if argv[0] in _PYTHON_NAMES:
        return [python, *argv[1:]]
    return list(argv)


def start(
    command: list[str],
    *,
    setup: Callable[[], None],
    env: dict[str, str],
    cwd: str,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen:
    """Starts ``command`` in a new session (so its group can be killed) after ``setup`` (``child_setup``), with
    stdout and stderr piped and nothing on stdin."""
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        env=env,
        cwd=cwd,
        start_new_session=True,
        umask=0o077,
        pass_fds=pass_fds,
        preexec_fn=setup,
    )


_preflight_ok: set[SandboxConfig] = set()
_preflight_lock = threading.Lock()
_unprivileged_logged = False

_USERNS_HINTS = (
    "No permission to create new namespace",
    "Creating new namespace failed",
    "setting up uid map",
    "Operation not permitted",
    "Permission denied",
)


def root_mode_missing(config: SandboxConfig) -> str | None:
    """Why this worker cannot run jobs in root mode (per-job cgroup, uid pool, tmpfs workspaces), or None."""
    why = cgroups_available()
    if why is None:
        try:
            check_pool(config.uid_base, config.uid_count)
        except SandboxUnavailable as exc:
            why = str(exc)
    return why


def _check_mode(config: SandboxConfig) -> None:
    why = root_mode_missing(config)
    if why is None:
        return
    if config.require_root_mode:
        raise SandboxUnavailable(
            f"The sandbox must run in root mode here (per-job cgroup and uid), but {why}: run the worker as root "
            "on a host with cgroup v1 memory/pids/cpuacct or a delegated cgroup v2."
        )
    global _unprivileged_logged
    if not _unprivileged_logged:
        _unprivileged_logged = True
        logger.warning(
            "Sandbox in unprivileged mode (%s): jobs run under per-process rlimits only, as this worker's uid, "
            "in plain folders (no per-job cgroup, uid or tmpfs). Fine for development, never for hostile code.",
            why,
        )


def sandbox_preflight(config: SandboxConfig) -> None:
    """Starts one trivial Python in a sandbox (seccomp filter included); raises SandboxUnavailable with what to
    fix. Cached per config."""
    with _preflight_lock:
        if config in _preflight_ok:
            return
    _check_mode(config)
    resolved = resolve(config)
    code = "import sys; print('%d.%d' % sys.version_info[:2])"
    policy = policy_for(resolved, None, Limits(), config.threads)
    lease = lease_uid(Path(config.lease_dir), config.uid_base, config.uid_count) if running_as_root() else None
    filter_fd = seccomp.program_fd()
    try:
        argv = [*bwrap_argv(resolved.bwrap, policy, seccomp_fd=filter_fd), resolved.python, "-c", code]
        ids = (lease.uid, lease.gid) if lease is not None else None
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin"},
            cwd="/",
            pass_fds=(filter_fd,),
            preexec_fn=child_setup(Limits(), ids=ids),
        )
    except subprocess.TimeoutExpired:
        raise SandboxUnavailable("A trivial Python in the sandbox did not finish within 60 s.")
    finally:
        os.close(filter_fd)
        if lease is not None:
            lease.release()
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
