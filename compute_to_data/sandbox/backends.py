"""The ways a run can be launched, one class each, chosen by name (``backend_named``; the Django side reads the
name from ``COMPUTE_SANDBOX_BACKEND``):

- ``BubblewrapBackend`` ("bubblewrap"): the sandbox of ``policy.py``. The only backend production accepts.
- ``UnsandboxedBackend`` ("unsandboxed"): the same interpreter, rlimits, uid and scrubbed environment straight
  on the host, to measure what the sandbox costs (bench/job_latency.py) and for tests. It must never run real
  jobs: the program sees the host's files and network, and a process that leaves its process group survives.

Both run ``argv`` the same way (``SandboxBackend.run``): start it, watch it (``monitor.watch``), stop it
(``cleanup.stop_run``) and explain its end (``monitor.classify``)."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from . import cgroup, launcher, monitor, seccomp, uids
from .cleanup import CleanupFailed, stop_run
from .host import SandboxConfig, SandboxUnavailable, resolve, running_as_root
from .limits import Limits
from .monitor import Outcome
from .policy import DATA_MOUNT, OUT_MOUNT, TMP_MOUNT, Folders, base_env, check_extra_env, policy_for
from .workspace import Workspace

logger = logging.getLogger(__name__)

READER_JOIN_SECONDS = 5.0


@dataclass
class _Launch:
    command: list[str]
    env: dict[str, str]
    cwd: str
    status_fds: tuple[int, int] | None = None  # bwrap's --json-status-fd pipe (read, write)
    # bwrap reports a program killed by signal N as exit status 128 + N.
    signal_in_exit_status: bool = False
    # Descriptors the program's start needs (the seccomp filter), closed once it ended.
    close_after: tuple[int, ...] = ()


class SandboxBackend:
    """Runs a program on a workspace under limits. Subclasses say how it is launched (``_launch``) and which paths
    the program uses for the workspace's folders (``paths``)."""

    name: ClassVar[str]

    def paths(self, ws: Workspace) -> dict[str, str]:
        """The paths the program must use for its input, output and temporary folders: write the spec with these."""
        raise NotImplementedError

    def preflight(self, config: SandboxConfig) -> None:
        """Raises SandboxUnavailable, saying what to fix, when this backend cannot run programs here."""
        raise NotImplementedError

    def _launch(
        self, config: SandboxConfig, ws: Workspace, argv: list[str], limits: Limits, extra_env: dict[str, str]
    ) -> _Launch:
        raise NotImplementedError

    def run(
        self,
        *,
        config: SandboxConfig,
        workspace: Workspace,
        argv: list[str],
        limits: Limits,
        on_event: Callable[[dict], None],
        should_cancel: Callable[[], bool] = lambda: False,
        extra_env: dict[str, str] | None = None,
    ) -> Outcome:
        """Runs ``argv`` (e.g. ``["python3", "-m", "dp_runner", "/data/spec.json"]``; a leading ``python``,
        ``python3`` or ``python3.X`` means the sandbox interpreter) and returns how it ended. Blocks until the
        run's processes are gone (its cgroup emptied and removed in root mode; otherwise, unsandboxed, until its
        process group is killed).

        ``on_event`` and ``should_cancel`` are called from the calling thread (safe for Django's per-thread
        connections): events at most ~20 per second (every "error" event and the last "progress" always arrive),
        ``should_cancel`` about four times a second. Exceptions they raise kill the run and propagate.
        Raises SandboxUnavailable when the sandbox cannot start, ValueError for a refused ``extra_env``, and
        CleanupFailed (logged at CRITICAL) when the run's processes cannot be killed or its cgroup removed."""
        extra = dict(extra_env or {})
        check_extra_env(extra)
        workspace.prepare(limits)
        launch = self._launch(config, workspace, argv, limits, extra)
        group = None
        try:
            if running_as_root():
                # Named after the job's uid, whose lease is held as long as the run's group may be in use: a group
                # whose uid is free is a dead worker's.
                lease_dir = Path(config.lease_dir)
                try:
                    group = cgroup.job_cgroup(
                        memory_bytes=limits.memory_bytes,
                        processes=limits.processes,
                        label=f"{workspace.uid}-{workspace.root.name}",
                        owner_alive=lambda name: _owner_alive(lease_dir, name),
                    )
                except cgroup.CgroupError as exc:
                    for fd in launch.status_fds or ():
                        os.close(fd)
                    raise SandboxUnavailable(str(exc)) from exc
            return self._run(launch, workspace, group, limits, on_event, should_cancel)
        finally:
            for fd in launch.close_after:
                os.close(fd)
            if group is not None:
                try:
                    group.remove()
                except cgroup.CgroupError as exc:
                    logger.critical("The run's processes could not be killed or its cgroup removed: %s", exc)
                    raise CleanupFailed(f"the run's cgroup could not be removed: {exc}") from exc

    def _run(
        self,
        launch: _Launch,
        workspace: Workspace,
        group: cgroup.JobCgroup | None,
        limits: Limits,
        on_event: Callable[[dict], None],
        should_cancel: Callable[[], bool],
    ) -> Outcome:
        status_read, status_write = launch.status_fds or (-1, -1)
        ids = (workspace.uid, workspace.gid) if running_as_root() else None
        setup = launcher.child_setup(limits, ids=ids, procs_files=group.procs_files if group is not None else ())
        pass_fds = tuple(fd for fd in (status_write, *launch.close_after) if fd >= 0)
        started = time.monotonic()
        try:
            proc = launcher.start(launch.command, setup=setup, env=launch.env, cwd=launch.cwd, pass_fds=pass_fds)
        except BaseException:
            for fd in (status_read, status_write):
                if fd >= 0:
                    os.close(fd)
            raise
        if status_write >= 0:
            os.close(status_write)
        assert proc.stdout is not None and proc.stderr is not None
        gate = monitor.EventGate()
        tail = monitor.Tail()
        status_info = monitor.Status()
        readers = [
            threading.Thread(target=monitor.read_events, args=(proc.stdout, gate), name="sandbox-stdout", daemon=True),
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
        try:
            killed_for = monitor.watch(
                pid=proc.pid,
                pidfd=pidfd,
                gate=gate,
                status=status_info,
                cpu_seconds=group.cpu_seconds if group is not None else None,
                over_disk=lambda: workspace.over_disk(limits),
                disk_is_cheap=workspace.mounted,
                limits=limits,
                started=started,
                on_event=on_event,
                should_cancel=should_cancel,
            )
        finally:
            stop_run(proc.pid, pidfd, status_info if launch.status_fds else None)
            if group is not None:
                group.kill()  # whatever left the process group or the pid namespace's reach
            _, status, usage = os.wait4(proc.pid, 0)
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

        if killed_for is None and workspace.over_disk(limits):
            killed_for = "disk"

        exit_code: int | None = None
        sig: int | None = None
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
        else:
            exit_code = os.WEXITSTATUS(status)
            if launch.signal_in_exit_status and 128 < exit_code < 128 + 65:
                sig, exit_code = exit_code - 128, None
        stderr_tail = tail.text()
        if killed_for is None and exit_code == 0:
            return Outcome(True, 0, None, None, "", elapsed, stderr_tail)
        facts = group.facts() if group is not None else None
        last_error = gate.last_error
        code = last_error.get("code") if last_error is not None else None
        if last_error is not None:
            logger.info("The runner's last error event: %r", str(last_error.get("message", ""))[:500])
        file_limit = min(limits.file_size_bytes, limits.disk_bytes)
        evidence = monitor.Evidence(
            killed_for=killed_for,
            exit_code=exit_code,
            sig=sig,
            cpu_used=facts.cpu_seconds if facts is not None else usage.ru_utime + usage.ru_stime,
            oom_killed=facts.oom_killed if facts is not None else False,
            pids_refused=facts.pids_refused if facts is not None else False,
            file_at_limit=monitor.largest_file((workspace.output_dir, workspace.tmp_dir), limits.files) >= file_limit,
            runner_error_code=None if last_error is None else code if isinstance(code, str) else "",
            sandbox_started=status_info.child_pid is not None or not launch.status_fds,
        )
        limit, reason = monitor.classify(evidence, limits)
        return Outcome(False, exit_code, sig, limit, reason, elapsed, stderr_tail)


def _owner_alive(lease_dir: Path, group_name: str) -> bool:
    """Whether the run's group ``<uid>-...`` may still be in use: its uid is leased (a name of another form: yes)."""
    uid = group_name.split("-", 1)[0]
    return not uid.isdigit() or uids.lease_held(lease_dir, int(uid))


class BubblewrapBackend(SandboxBackend):
    """Each run in a fresh bubblewrap sandbox built from ``policy.policy_for``."""

    name = "bubblewrap"

    def paths(self, ws: Workspace) -> dict[str, str]:
        return {"data": DATA_MOUNT, "out": OUT_MOUNT, "tmp": TMP_MOUNT}

    def preflight(self, config: SandboxConfig) -> None:
        launcher.sandbox_preflight(config)

    def _launch(
        self, config: SandboxConfig, ws: Workspace, argv: list[str], limits: Limits, extra_env: dict[str, str]
    ) -> _Launch:
        launcher.sandbox_preflight(config)
        resolved = resolve(config)
        program = launcher.program_argv(argv, resolved.python)
        folders = Folders(data=str(ws.input_dir), out=str(ws.output_dir), tmp=str(ws.tmp_dir))
        resolved = dataclasses.replace(resolved, uid=ws.uid, gid=ws.gid)
        policy = policy_for(resolved, folders, limits, config.threads, extra_env)
        filter_fd = seccomp.program_fd()
        status_read, status_write = os.pipe()
        command = launcher.bwrap_argv(resolved.bwrap, policy, status_write, filter_fd) + program
        return _Launch(
            command,
            {"PATH": "/usr/bin:/bin"},
            "/",
            status_fds=(status_read, status_write),
            signal_in_exit_status=True,
            close_after=(filter_fd,),
        )


class UnsandboxedBackend(SandboxBackend):
    """For tests and benchmarks only (see the module docstring): the host's folders instead of /data, /out and
    /tmp (in ``argv`` items and ``extra_env`` values that start with them), PYTHONPATH a ``dp_runner`` link in the
    workspace, then the site-packages."""

    name = "unsandboxed"

    def paths(self, ws: Workspace) -> dict[str, str]:
        return {"data": str(ws.input_dir), "out": str(ws.output_dir), "tmp": str(ws.tmp_dir)}

    def preflight(self, config: SandboxConfig) -> None:
        resolve(config)

    def _launch(
        self, config: SandboxConfig, ws: Workspace, argv: list[str], limits: Limits, extra_env: dict[str, str]
    ) -> _Launch:
        resolved = resolve(config)
        runner_parent = ws.root / "runner"
        if not runner_parent.exists():
            runner_parent.mkdir(mode=0o755)
            (runner_parent / "dp_runner").symlink_to(resolved.runner_dir)
        command = [_to_host_path(a, ws) for a in launcher.program_argv(argv, resolved.python)]
        env = base_env(config.threads) | {
            "HOME": str(ws.tmp_dir),
            "TMPDIR": str(ws.tmp_dir),
            "PYTHONPATH": ":".join([str(runner_parent), *resolved.site_packages]),
        }
        env |= {name: _to_host_path(value, ws) for name, value in extra_env.items()}
        return _Launch(command, env, str(ws.tmp_dir))


def _to_host_path(value: str, ws: Workspace) -> str:
    if value == str(ws.root) or value.startswith(str(ws.root) + "/"):
        return value  # already a host path of this workspace (which may itself live under /tmp)
    for mount, host in ((DATA_MOUNT, ws.input_dir), (OUT_MOUNT, ws.output_dir), (TMP_MOUNT, ws.tmp_dir)):
        if value == mount or value.startswith(mount + "/"):
            return str(host) + value[len(mount) :]
    return value


BACKENDS: dict[str, type[SandboxBackend]] = {b.name: b for b in (BubblewrapBackend, UnsandboxedBackend)}


def backend_named(name: str) -> SandboxBackend:
    """The backend called ``name``; KeyError, naming the known ones, for any other."""
    try:
        return BACKENDS[name]()
    except KeyError:
        raise KeyError(f"unknown sandbox backend {name!r} (known: {', '.join(BACKENDS)})") from None
