"""Starting a program: a ``SandboxPolicy`` rendered as a bubblewrap command line, the switch to the sandbox uid
(in the child, before exec) and the rlimits, plus the preflight that proves a trivial sandbox starts here.

When the worker is root it drops to ``SandboxConfig.sandbox_uid`` before starting bwrap (RLIMIT_NPROC is not
enforced for root, and root-owned files bound in would stay readable); an unprivileged worker runs the sandbox
under its own uid."""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import dataclass

from .host import Resolved, SandboxConfig, SandboxUnavailable, resolve, running_as_root
from .limits import Limits, rlimit_setter
from .policy import ALL_NAMESPACES, SandboxPolicy, policy_for

_PYTHON_NAMES = ("python", "python3", f"python{sys.version_info.major}.{sys.version_info.minor}")


def bwrap_argv(bwrap: str, policy: SandboxPolicy, status_fd: int | None = None) -> list[str]:
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
    argv.append("--")
    return argv


@dataclass(frozen=True)
class _Drop:
    """Popen's user, group and extra_groups: the switch to the sandbox uid in the child (in C, before
    preexec_fn) when we are root; all None (no switch) otherwise."""

    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None


def drop_to(resolved: Resolved) -> _Drop:
    if not running_as_root():
        return _Drop()
    return _Drop(resolved.uid, resolved.gid, [])


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
    resolved: Resolved,
    limits: Limits,
    env: dict[str, str],
    cwd: str,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen:
    """Starts ``command`` in a new session (so its group can be killed), as the sandbox uid, under ``limits``'
    rlimits, with stdout and stderr piped and nothing on stdin."""
    drop = drop_to(resolved)
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
        user=drop.user,
        group=drop.group,
        extra_groups=drop.extra_groups,
        preexec_fn=rlimit_setter(limits),
    )


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
    resolved = resolve(config)
    code = "import sys; print('%d.%d' % sys.version_info[:2])"
    policy = policy_for(resolved, None, Limits(), config.threads)
    argv = [*bwrap_argv(resolved.bwrap, policy), resolved.python, "-c", code]
    drop = drop_to(resolved)
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin"},
            cwd="/",
            user=drop.user,
            group=drop.group,
            extra_groups=drop.extra_groups,
            preexec_fn=rlimit_setter(Limits()),
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
