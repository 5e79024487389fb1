"""Watching a run: the runner's events read from its stdout and paced for the caller, the tail of its stderr,
bwrap's status pipe, the CPU, disk and wall-clock watchdogs, cancellation polling, and how an end is explained
(``classify``)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .limits import Limits, human_bytes

MAX_EVENT_LINE = 64 << 10
STDERR_TAIL_BYTES = 2048
EVENTS_PER_SECOND = 20.0
MAX_ERROR_EVENTS = 100
MAX_BACKLOG_EVENTS = 1000
MAX_BACKLOG_BYTES = 4 << 20
POLL_SECONDS = 0.1
CANCEL_POLL_SECONDS = 0.25


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


# ------------------------------------------------------------------------------------------------- the pipes


class EventGate:
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


def read_events(stream: BinaryIO, gate: EventGate) -> None:
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


class Tail:
    """The last ``size`` bytes of a stream (the program's stderr), for the operators' log."""

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


class Status:
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


# --------------------------------------------------------------------------------------------- process probes


def exited(pid: int, pidfd: int | None, timeout: float) -> bool:
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


def parent_of(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[1]) if len(fields) > 1 else None


def cpu_seconds_of(pid: int, parent: int) -> float:
    """User + system CPU time of one process (all its threads); 0 unless it is still ``parent``'s child."""
    fields = _proc_stat(pid)
    if len(fields) < 13 or int(fields[1]) != parent:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def disk_usage(folders: Iterable[Path], max_bytes: int, max_entries: int) -> tuple[int, int]:
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


def over_disk(folders: Iterable[Path], limits: Limits) -> bool:
    used, entries = disk_usage(folders, limits.disk_bytes, limits.files)
    return used > limits.disk_bytes or entries > limits.files


# ------------------------------------------------------------------------------------------------ the watch


def watch(
    *,
    pid: int,
    pidfd: int | None,
    gate: EventGate,
    status: Status,
    folders: tuple[Path, ...],
    limits: Limits,
    started: float,
    on_event: Callable[[dict], None],
    should_cancel: Callable[[], bool],
) -> str | None:
    """Delivers events and polls the watchdogs until the run's leader exits or must be stopped; returns why it
    must be stopped (wall_clock, cancelled, cpu, disk) or None once it exited. Exceptions of ``on_event`` and
    ``should_cancel`` propagate (the caller kills the run in any case)."""
    deadline = started + limits.wall_seconds
    next_cancel = next_disk = started
    while not exited(pid, pidfd, POLL_SECONDS):
        for event in gate.take():
            on_event(event)
        now = time.monotonic()
        if now >= deadline:
            return "wall_clock"
        if now >= next_cancel:
            next_cancel = now + CANCEL_POLL_SECONDS
            if should_cancel():
                return "cancelled"
        child = status.child_pid
        if child is not None and cpu_seconds_of(child, pid) >= limits.cpu_seconds:
            return "cpu"
        if now >= next_disk:
            over = over_disk(folders, limits)
            # A big tree takes a while to scan: keep the watchdog under ~20% of a core.
            next_disk = now + 4 * (time.monotonic() - now)
            if over:
                return "disk"
    return None


# --------------------------------------------------------------------------------------------- explaining it


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


_MEMORY_MARKERS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")
_PROCESS_MARKERS = ("Resource temporarily unavailable", "BlockingIOError", "can't start new thread")
_FILE_SIZE_MARKERS = ("File too large", "[Errno 27]")


def classify(
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
            f"The job wrote more than {human_bytes(limits.disk_bytes)} (or more than {limits.files} files) to its "
            "output and temporary folders and was stopped."
        )
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_used >= limits.cpu_seconds) or code == "cpu":
        return "cpu", f"The job exceeded its CPU-time limit of {limits.cpu_seconds} s and was stopped."
    if sig == signal.SIGXFSZ or code == "file_size" or any(m in stderr_tail for m in _FILE_SIZE_MARKERS):
        return "file_size", (
            f"The job tried to write a file larger than {human_bytes(min(limits.file_size_bytes, limits.disk_bytes))}."
        )
    if code == "memory" or any(m in stderr_tail for m in _MEMORY_MARKERS):
        return "memory", f"The job ran out of memory (limit {human_bytes(limits.memory_bytes)})."
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
