"""The kernel side of the sandbox against hostile programs (issue 16), each run through the real launcher as the
worker runs it (root, dropping to the job's leased uid, in the job's cgroup, on its tmpfs): memory outside
RLIMIT_AS, CPU of children, the process count across jobs, disk space hidden from a path walk, a tree no recursive
remover can walk, the kernel keyrings, and the program's own words. Each test asserts containment and the reason
the worker gives, which comes from the kernel's counts, never from the program.

Run them alone with ``pytest -m hostile``."""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import platform
import shutil
import stat
import threading
import time
from pathlib import Path

import pytest

from compute_to_data.sandbox import (  # noqa: I001 - the package's modules, apart
    CleanupFailed,
    SandboxConfig,
    SandboxUnavailable,
    cgroup,
    rmtree_fixing_permissions,
    tree,
    uids,
    workspace,
)
from compute_to_data.sandbox.launcher import root_mode_missing
from compute_to_data.sandbox.monitor import EventParser
from tests.compute_to_data.sandbox.support import SMALL, run_code, wait_no_processes

_MISSING = root_mode_missing(SandboxConfig())
pytestmark = [
    pytest.mark.hostile,
    pytest.mark.integration,
    pytest.mark.skipif(_MISSING is not None, reason=f"the sandbox's root mode is not available: {_MISSING}"),
]


def _host_shmem() -> int:
    """The host's shared memory in use (SysV shm, memfd and tmpfs pages: /proc/meminfo's Shmem)."""
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("Shmem:"):
                return int(line.split()[1]) << 10
    raise RuntimeError("no Shmem in /proc/meminfo")


def _shmem_back(before: int, slack: int, seconds: float = 5.0) -> bool:
    """Whether the host's Shmem is back within ``slack`` of ``before`` (a namespace is freed a moment later)."""
    deadline = time.monotonic() + seconds
    while _host_shmem() > before + slack:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# ------------------------------------------------------------------------------------------------------ memory


def test_shared_memory_memfd_and_children_are_held_to_the_memory_limit(run_hostile) -> None:
    limits = dataclasses.replace(SMALL, memory_bytes=512 << 20)
    before = _host_shmem()
    run = run_hostile("shm_memory", limits=limits, args={"target_bytes": 1_600_000_000, "children": 3})
    run.assert_contained()
    assert run.outcome.limit == "memory", run.outcome
    assert run.outcome.reason == "The job ran out of memory (limit 512 MiB)."
    # The shared memory went with the job's IPC namespace, the memfd files with its processes.
    assert _shmem_back(before, 64 << 20), (before, _host_shmem())


# --------------------------------------------------------------------------------------------------------- CPU


def test_cpu_time_of_children_counts_against_the_job(run_hostile) -> None:
    limits = dataclasses.replace(SMALL, cpu_seconds=2, wall_seconds=20)
    run = run_hostile("cpu_children", limits=limits, args={"target_seconds": 40, "children": 4})
    run.assert_contained()
    assert run.outcome.limit == "cpu", run.outcome
    assert run.outcome.reason == "The job exceeded its CPU-time limit of 2 s and was stopped."
    assert run.outcome.wall_seconds < 15


# -------------------------------------------------------------------------------------------------- processes


def test_a_job_exhausting_its_processes_does_not_affect_a_job_beside_it(base: Path, config, run_hostile) -> None:
    limits = dataclasses.replace(SMALL, processes=16)
    hostile: list = []
    thread = threading.Thread(
        target=lambda: hostile.append(
            run_hostile("hold_processes", limits=limits, args={"hold_seconds": 4}, others_running=True)
        )
    )
    thread.start()
    try:
        time.sleep(1.5)  # the hostile job holds all its 16 processes now
        innocent_code = """
import os, time
children = []
for _ in range(10):
    pid = os.fork()
    if pid == 0:
        time.sleep(0.2)
        os._exit(0)
    children.append(pid)
assert all(os.waitpid(pid, 0)[1] == 0 for pid in children)
"""
        with workspace(base, "innocent", config) as ws:
            innocent = run_code(config, ws, innocent_code, limits)
            innocent_uid = ws.uid
    finally:
        thread.join()
    assert innocent.outcome.ok, innocent.outcome
    (run,) = hostile
    assert run.uid != innocent_uid  # each job its own uid: RLIMIT_NPROC and pids.max count only its own tasks
    run.assert_contained()
    assert run.outcome.limit == "processes", run.outcome
    assert run.outcome.reason == "The job tried to run more than 16 processes or threads."


# -------------------------------------------------------------------------------------------------------- disk


@pytest.mark.parametrize("mode", ["deep", "deep_files", "unlinked"])
def test_disk_hidden_from_a_path_walk_is_counted(base: Path, run_hostile, mode: str) -> None:
    limits = dataclasses.replace(SMALL, disk_bytes=32 << 20, files=500)
    disk_before, shmem_before = shutil.disk_usage(base).free, _host_shmem()
    run = run_hostile("hidden_disk", limits=limits, args={"mode": mode, "target_bytes": 200 << 20})
    run.assert_contained()
    assert run.outcome.limit == "disk", run.outcome
    assert run.outcome.reason.startswith("The job wrote more than 32 MiB (or more than 500 files)")
    # The job's writes lived on its tmpfs: never on the host's disk, and its memory is back once unmounted.
    assert shutil.disk_usage(base).free > disk_before - (64 << 20)
    assert _shmem_back(shmem_before, 16 << 20), (shmem_before, _host_shmem())


# ----------------------------------------------------------------------------------------------------- cleanup


def test_a_tree_deeper_than_a_recursive_remover_can_walk_is_removed(run_hostile) -> None:
    run = run_hostile("deep_tree", args={"levels": 3000})  # run_hostile asserts the workspace is gone
    assert run.outcome.reason == "The runner stopped with exit status 3.", run.outcome


def test_the_remover_needs_no_mount_to_remove_a_deep_read_only_tree(base: Path) -> None:
    """The unprivileged mode's remover (plain folders): depth beyond PATH_MAX and recursion, modes 0 and 0500."""
    root = base / "deep-on-disk"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for i in range(2500):
        os.mkdir("d" * 150, dir_fd=fd)
        deeper = os.open("d" * 150, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        if i % 700 == 0:
            os.close(os.open("f", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=deeper))
            os.chmod("d" * 150, 0o500 if i else 0, dir_fd=fd)
        os.close(fd)
        fd = deeper
    os.close(fd)
    assert sum(1 for _ in tree.walk_stats(root)) == 2500 + 4
    rmtree_fixing_permissions(root)
    assert not root.exists()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.CRITICAL)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_failed_cleanup_quarantines_the_workspace_and_raises(
    base: Path, config: SandboxConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    quarantine = base / "quarantine"
    cfg = dataclasses.replace(config, quarantine_dir=str(quarantine))

    def refuse(root: Path) -> None:
        raise PermissionError(13, "Permission denied", str(root))

    monkeypatch.setattr(tree, "remove_tree", refuse)
    records = _Records()
    cleanup_logger = logging.getLogger("compute_to_data.sandbox.cleanup")
    cleanup_logger.addHandler(records)
    try:
        with pytest.raises(CleanupFailed) as failed:
            with workspace(base, "stuck", cfg) as ws:
                ws.write_input("dataset.csv", [b"a,b\n1,2\n"])
    finally:
        cleanup_logger.removeHandler(records)
        monkeypatch.undo()
    assert not ws.root.exists()
    moved = failed.value.quarantined
    assert moved is not None and moved.parent == quarantine
    assert stat.S_IMODE(quarantine.stat().st_mode) == 0o700 and quarantine.stat().st_uid == 0
    # The tmpfs went with the unmount: what is quarantined holds no dataset.
    assert not (moved / "input" / "dataset.csv").exists()
    assert any(str(ws.root) in r.getMessage() for r in records.records)
    rmtree_fixing_permissions(quarantine)


# ----------------------------------------------------------------------------------------------------- keyring


def _host_session_key(description: bytes) -> int:
    add_key = {"x86_64": 248, "aarch64": 217}[platform.machine()]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    serial = libc.syscall(add_key, b"user", description, b"worker-secret", 13, -3)  # the worker's session keyring
    if serial < 0:
        pytest.skip(f"cannot add a key to this process's session keyring (errno {ctypes.get_errno()})")
    return serial


def _host_unlink_key(serial: int) -> None:
    keyctl = {"x86_64": 250, "aarch64": 219}[platform.machine()]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall(keyctl, 9, serial, -3)  # KEYCTL_UNLINK from the session keyring


def test_no_key_can_be_linked_into_a_keyring_or_read_from_one(run_hostile) -> None:
    linked = run_hostile("keyring", args={"mode": "link", "description": "hostile-key"})
    linked.assert_contained()
    assert linked.outcome.exit_code == 3, linked.outcome
    serial = _host_session_key(b"worker-key")
    try:
        read = run_hostile("keyring", args={"mode": "read", "description": "worker-key"})
    finally:
        _host_unlink_key(serial)
    read.assert_contained()
    assert read.outcome.exit_code == 3, read.outcome
    assert "hostile-key" not in Path("/proc/keys").read_text()


def test_the_seccomp_filter_refuses_kernel_surface_but_not_python(base: Path, config: SandboxConfig) -> None:
    code = r"""
import ctypes, errno, json, os, platform, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
nr = {"x86_64": {"ptrace": 101, "unshare": 272, "mount": 165, "bpf": 321, "personality": 135, "clone3": 435,
                 "userfaultfd": 323, "perf_event_open": 298, "setns": 308},
      "aarch64": {"ptrace": 117, "unshare": 97, "mount": 40, "bpf": 280, "personality": 92, "clone3": 435,
                  "userfaultfd": 282, "perf_event_open": 241, "setns": 268}}[platform.machine()]
calls = {
    "ptrace": (0, 0, 0, 0), "unshare": (0x10000000,), "unshare_net": (0x40000000,),
    "mount": (b"x", b"/tmp", b"tmpfs", 0, 0),
    "bpf": (0, 0, 0), "personality": (0x0040000,), "clone3": (0, 0), "userfaultfd": (0,),
    "perf_event_open": (0, 0, -1, -1, 0), "setns": (0, 0),
}
seen = {}
for name, args in calls.items():
    ctypes.set_errno(0)
    result = libc.syscall(nr[name.split("_net")[0]], *args)
    seen[name] = errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno())) if result < 0 else "allowed"
pid = os.fork()
if pid == 0:
    os._exit(7)
forked = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
out = []
t = threading.Thread(target=out.append, args=(1,)); t.start(); t.join()
import numpy
seen["python"] = [forked, out, int(numpy.arange(5).sum()), libc.syscall(nr["personality"], 0xFFFFFFFF) >= 0]
print(json.dumps({"event": "log", "message": "seccomp", "seen": seen}))
"""
    with workspace(base, "seccomp", config) as ws:
        run = run_code(config, ws, code)
    assert run.outcome.ok, run.outcome
    seen = next(e for e in run.events if e.get("message") == "seccomp")["seen"]
    assert seen.pop("python") == [7, [1], 10, True]
    assert seen.pop("clone3") == "ENOSYS"  # so the C library falls back to clone, whose flags the filter reads
    assert seen == dict.fromkeys(seen, "EPERM"), seen


# ----------------------------------------------------------------------------------------- the program's words


def test_the_programs_words_are_no_evidence_and_never_the_reason(run_hostile) -> None:
    run = run_hostile("lying_stderr")
    assert not run.outcome.ok and run.outcome.exit_code == 1
    assert run.outcome.limit is None, run.outcome  # "MemoryError", "File too large" ... proved nothing
    assert run.outcome.reason == "The runner reported an error."
    for word in ("Memory", "large", "http", "evil", "seed", "\x1b"):
        assert word not in run.outcome.reason
    # The operators' log keeps the text, its control characters made harmless.
    assert "evil.example" in run.outcome.stderr_tail
    assert "\x1b" not in run.outcome.stderr_tail and "\x07" not in run.outcome.stderr_tail


def test_non_finite_and_malformed_events_are_dropped_and_the_monitor_goes_on(run_hostile) -> None:
    run = run_hostile("nan_progress")
    assert run.outcome.reason == "The runner stopped with exit status 3.", run.outcome
    assert run.events == [{"event": "progress", "fraction": 0.25, "phase": "loading"}]


def test_the_event_parser_counts_what_it_drops() -> None:
    parser = EventParser()
    lines = [b'{"event": "progress", "fraction": NaN}', b'{"event": "x", "v": 1e400}', b"[1]", b"\xff", b"[" * 50_000]
    assert [parser.parse(line) for line in lines] == [None] * 5
    assert parser.parse(b'{"event": "progress", "fraction": 0.5}') == {"event": "progress", "fraction": 0.5}
    assert parser.dropped == {
        "not JSON or not finite": 2,
        "not an event object": 1,
        "invalid UTF-8": 1,
        "nested too deep": 1,
    }


# -------------------------------------------------------------------------------------------------- the pieces


def test_uid_leases_are_distinct_and_outside_every_account(tmp_path: Path) -> None:
    first = uids.lease_uid(tmp_path, 620_000, 2)
    second = uids.lease_uid(tmp_path, 620_000, 2)
    try:
        assert {first.uid, second.uid} == {620_000, 620_001}
        with pytest.raises(SandboxUnavailable, match="leased"):
            uids.lease_uid(tmp_path, 620_000, 2)
    finally:
        first.release()
    again = uids.lease_uid(tmp_path, 620_000, 2)
    assert again.uid == first.uid
    again.release()
    second.release()
    with pytest.raises(SandboxUnavailable, match="65534"):
        uids.check_pool(65_500, 64)
    with pytest.raises(SandboxUnavailable, match="/etc/passwd"):
        uids.check_pool(0 + 1, 10)  # daemon, bin, sys ...


def test_a_crashed_workers_lease_frees_itself(tmp_path: Path) -> None:
    pid = os.fork()
    if pid == 0:
        uids.lease_uid(tmp_path, 620_000, 1)
        os._exit(0)  # dies holding the lease
    os.waitpid(pid, 0)
    lease = uids.lease_uid(tmp_path, 620_000, 1)
    assert lease.uid == 620_000
    lease.release()


def test_cgroup_v2_facts_are_read_from_the_kernels_counters(tmp_path: Path) -> None:
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n")
    (tmp_path / "pids.events").write_text("max 3\n")
    (tmp_path / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    facts = cgroup._V2(tmp_path).facts()
    assert facts == cgroup.Facts(oom_killed=True, pids_refused=True, cpu_seconds=2.5)
    (tmp_path / "memory.events").write_text("max 12\noom 0\noom_kill 0\n")
    (tmp_path / "pids.events").write_text("max 0\n")
    assert cgroup._V2(tmp_path).facts() == cgroup.Facts(oom_killed=False, pids_refused=False, cpu_seconds=2.5)


def test_a_runs_cgroup_is_gone_after_it_with_everything_in_it(base: Path, config: SandboxConfig) -> None:
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\n"
    seen: list[str] = []
    with workspace(base, "cgroup", config) as ws:
        prefix = ws.root.name + "-"  # the run's group is named after its workspace
        parents = list((cgroup._v1_parents() or {}).values()) or [cgroup._v2_parent()]
        run = run_code(config, ws, code)
        for parent in parents:
            assert parent is not None and parent.is_dir()
            seen += [name for name in os.listdir(parent) if name.startswith(prefix)]
    assert run.outcome.ok, run.outcome
    assert wait_no_processes(ws.uid) == []
    assert seen == []


def test_a_dead_workers_empty_cgroup_is_removed_by_the_next_run() -> None:
    alive = {"dead-worker": False, "live-worker": True}

    def owner_alive(name: str) -> bool:
        return alive.get(name.rsplit("-", 1)[0], True)  # other groups on this host: not ours to judge

    groups = {
        label: cgroup.job_cgroup(memory_bytes=64 << 20, processes=8, label=label, owner_alive=lambda _: True)
        for label in alive
    }
    old = time.time() - 2 * cgroup.STALE_SECONDS
    for group in groups.values():
        assert group is not None
        for path in group.paths:
            os.utime(path, (old, old))  # empty for a while, as a dead worker's group is
    fresh = cgroup.job_cgroup(memory_bytes=64 << 20, processes=8, label="next-run", owner_alive=owner_alive)
    assert fresh is not None
    try:
        dead, live = groups["dead-worker"], groups["live-worker"]
        assert dead is not None and live is not None
        assert not any(path.exists() for path in dead.paths)
        assert all(path.exists() for path in live.paths)  # its owner holds its lease: never swept
    finally:
        fresh.remove()
        for group in groups.values():
            assert group is not None
            group.remove()
