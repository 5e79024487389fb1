"""Watching a run: the runner's events read from its stdout and paced for the caller, the tail of its stderr,
bwrap's status pipe, the CPU, disk and wall-clock watchdogs, cancellation polling, and how an end is explained
(``classify``)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
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

from . import tree
from .limits import Limits, human_bytes

logger = logging.getLogger(__name__)

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


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number an event may carry")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 reads as infinity
        raise ValueError(f"{text[:20]} is not finite")
    return value


class EventParser:
    """Runner events from stdout lines, strictly: UTF-8 JSON objects with a string "event", finite numbers only
    (NaN, Infinity and numbers that overflow to them are refused), at most ``MAX_EVENT_LINE`` bytes. Anything else
    is dropped and counted by why; nothing a line holds can raise out of ``parse``."""

    def __init__(self) -> None:
        self.dropped: dict[str, int] = {}

    def drop(self, why: str) -> None:
        self.dropped[why] = self.dropped.get(why, 0) + 1

    def parse(self, line: bytes) -> dict | None:
        if not line.strip():
            return None
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self.drop("invalid UTF-8")
            return None
        try:
            event = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
        except RecursionError:  # deep nesting within 64 KiB overflows the parser
            self.drop("nested too deep")
            return None
        except ValueError:
            self.drop("not JSON or not finite")
            return None
        except Exception:  # a parser bug must not end the reader: the watchdogs rely on the pipes being drained
            logger.exception("Unexpected failure parsing a runner event")
            self.drop("parser failure")
            return None
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            self.drop("not an event object")
            return None
        return event


def read_events(stream: BinaryIO, gate: EventGate, parser: EventParser | None = None) -> None:
    """Splits stdout into lines without ever buffering more than one line of MAX_EVENT_LINE bytes, and offers
    each event to ``gate``; dropped lines are counted in ``parser.dropped`` (and logged once the stream ends)."""
    parser = parser or EventParser()
    line = bytearray()
    overlong = False
    try:
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
                if overlong:
                    parser.drop("longer than 64 KiB")
                elif (event := parser.parse(bytes(line))) is not None:
                    gate.offer(event, len(line))
                line.clear()
                overlong = False
                start = newline + 1
    finally:
        stream.close()
        if parser.dropped:
            logger.warning("Runner output lines dropped: %s", parser.dropped)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


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
        """The tail as text for a log line: control characters (terminal escapes among them) become "?"."""
        with self._lock:
            text = bytes(self._buf).decode("utf-8", "replace")
        return _CONTROL.sub("?", text)


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
    """Allocated bytes and entries under ``folders`` without following symlinks, at any depth or path length;
    stops early once over a limit. For the unprivileged mode, where the folders are not a mount of their own."""
    total = entries = 0
    for folder in folders:
        try:
            stats = tree.walk_stats(folder)
            for st in stats:
                entries += 1
                # Sparse files count at their apparent size: the caller may copy them out.
                total += max(st.st_blocks * 512, st.st_size if stat.S_ISREG(st.st_mode) else 0)
                if total > max_bytes or entries > max_entries:
                    return total, entries
        except OSError:
            continue
    return total, entries


def largest_file(folders: Iterable[Path], max_entries: int) -> int:
    """The apparent size of the largest regular file under ``folders`` (looking at most ``max_entries`` entries)."""
    largest = seen = 0
    for folder in folders:
        with contextlib.suppress(OSError):
            for st in tree.walk_stats(folder):
                seen += 1
                if stat.S_ISREG(st.st_mode):
                    largest = max(largest, st.st_size)
                if seen > max_entries:
                    return largest
    return largest


# ------------------------------------------------------------------------------------------------ the watch


def watch(
    *,
    pid: int,
    pidfd: int | None,
    gate: EventGate,
    status: Status,
    cpu_seconds: Callable[[], float] | None,
    over_disk: Callable[[], bool],
    disk_is_cheap: bool,
    limits: Limits,
    started: float,
    on_event: Callable[[dict], None],
    should_cancel: Callable[[], bool],
) -> str | None:
    """Delivers events and polls the watchdogs until the run's leader exits or must be stopped; returns why it
    must be stopped (wall_clock, cancelled, cpu, disk) or None once it exited. CPU time is ``cpu_seconds`` (the
    run's cgroup: the whole tree), else the sandboxed program's own. Exceptions of ``on_event`` and
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
        if cpu_seconds is not None:
            used = cpu_seconds()
        else:
            child = status.child_pid
            used = cpu_seconds_of(child, pid) if child is not None else 0.0
        if used >= limits.cpu_seconds:
            return "cpu"
        if now >= next_disk:
            over = over_disk()
            # A big tree takes a while to scan: keep the watchdog under ~20% of a core (a statfs is free).
            next_disk = now if disk_is_cheap else now + 4 * (time.monotonic() - now)
            if over:
                return "disk"
    return None


# --------------------------------------------------------------------------------------------- explaining it


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


# A runner "error" event's code selects one of these sentences; its message goes to the operators' log only.
RUNNER_ERROR_TEXT = {
    "invalid_parameters": "The runner refused the job's parameters.",
    "invalid_data": "The runner could not read the dataset as the algorithm needs it.",
    "internal": "The runner failed with an internal error.",
}
RUNNER_ERROR_DEFAULT = "The runner reported an error."


@dataclass(frozen=True)
class Evidence:
    """The facts a run's end is explained from, all measured by the worker or the kernel, none said by the
    program: the cgroup's OOM kills and refused forks (None without a cgroup), the CPU seconds of the tree (or
    of the leader's children), whether a written file reached the file-size limit, and the code of the runner's
    last error event (only to choose a fixed sentence)."""

    killed_for: str | None
    exit_code: int | None
    sig: int | None
    cpu_used: float
    oom_killed: bool = False
    pids_refused: bool = False
    file_at_limit: bool = False
    runner_error_code: str | None = None
    # bwrap reported the program's pid (its status pipe, which the program cannot write): the sandbox was up.
    sandbox_started: bool = True


def classify(evidence: Evidence, limits: Limits) -> tuple[str | None, str]:
    """Maps how the run ended to (limit, reason): a sentence of a fixed list, never the program's words."""
    e = evidence
    if not e.sandbox_started and e.killed_for is None:
        return None, "The sandbox could not be started."
    if e.killed_for == "wall_clock":
        return e.killed_for, f"The job exceeded its wall-clock limit of {limits.wall_seconds:g} s and was stopped."
    if e.killed_for == "cancelled":
        return e.killed_for, "The job was cancelled."
    cpu = f"The job exceeded its CPU-time limit of {limits.cpu_seconds} s and was stopped."
    if e.killed_for == "cpu":
        return "cpu", cpu
    if e.killed_for == "disk":
        return "disk", (
            f"The job wrote more than {human_bytes(limits.disk_bytes)} (or more than {limits.files} files) to its "
            "output and temporary folders and was stopped."
        )
    if e.oom_killed:
        return "memory", f"The job ran out of memory (limit {human_bytes(limits.memory_bytes)})."
    if e.sig == signal.SIGXCPU or (e.sig == signal.SIGKILL and e.cpu_used >= limits.cpu_seconds):
        return "cpu", cpu
    if e.pids_refused:
        return "processes", f"The job tried to run more than {limits.processes} processes or threads."
    if e.sig == signal.SIGXFSZ or e.file_at_limit:
        return "file_size", (
            f"The job tried to write a file larger than {human_bytes(min(limits.file_size_bytes, limits.disk_bytes))}."
        )
    if e.runner_error_code is not None:
        return None, RUNNER_ERROR_TEXT.get(e.runner_error_code, RUNNER_ERROR_DEFAULT)
    if e.sig is not None:
        return None, f"The runner was killed by {_signal_name(e.sig)}."
    return None, f"The runner stopped with exit status {e.exit_code}."
