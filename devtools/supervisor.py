"""A small process supervisor for ``make run`` (development only; production runs each process under
its own service manager, see docker/compose.yml).

Runs the web server, the Celery worker and Celery beat as separate programs. A program that exits
is restarted after a back-off (1 s, doubling up to 30 s, back to 1 s once it has stayed up for a
minute), with a log line naming it and its exit status; the others keep serving. Each program runs
in its own session and process group, and the whole group is killed when its leader exits, so no
orphan (a pool child, a reloader) lingers holding a pipe or a port. Ctrl-C or SIGTERM stops them
all: SIGTERM to each leader, then SIGKILL to each group once its leader exited or after a grace
period.

honcho, used before, stops everything when one program exits and cannot restart one."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from io import TextIOBase
from typing import IO


@dataclass
class Program:
    """One supervised command: ``argv`` run with ``env`` (None: the supervisor's) in ``cwd``."""

    name: str
    argv: Sequence[str]
    env: dict[str, str] | None = None
    cwd: str | None = None


@dataclass
class _State:
    program: Program
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_at: float = 0.0
    backoff: float = 0.0
    restarts: int = 0
    reader: threading.Thread | None = None


def describe_exit(code: int) -> str:
    """``exit code 1`` or ``killed by SIGKILL`` for a Popen return code."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class Supervisor:
    """Runs ``programs`` until ``stop()`` (or Ctrl-C / SIGTERM in ``run``)."""

    programs: Sequence[Program]
    min_backoff: float = 1.0
    max_backoff: float = 30.0
    # A program that stayed up this long is healthy again: its next restart waits min_backoff.
    stable_seconds: float = 60.0
    stop_grace_seconds: float = 10.0
    poll_seconds: float = 0.1
    output: IO[str] | TextIOBase = field(default_factory=lambda: sys.stdout)  # TextIOBase: a command's stdout
    on_restart: Callable[[str, int], None] | None = None
    _states: dict[str, _State] = field(default_factory=dict, init=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)
    _write_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        names = [p.name for p in self.programs]
        if len(set(names)) != len(names):
            raise ValueError("program names must be unique")
        self._states = {p.name: _State(p, backoff=self.min_backoff) for p in self.programs}

    # --- reading ---------------------------------------------------------------------------------

    def restarts(self) -> dict[str, int]:
        return {name: state.restarts for name, state in self._states.items()}

    def pid(self, name: str) -> int | None:
        process = self._states[name].process
        return process.pid if process is not None and process.poll() is None else None

    def log(self, message: str, *, name: str = "supervisor") -> None:
        with self._write_lock:
            self.output.write(f"{time.strftime('%H:%M:%S')} {name:<10} | {message}\n")
            self.output.flush()

    # --- running ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Start every program and keep them running until ``stop()``, Ctrl-C or SIGTERM."""
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, self._on_signal)
        try:
            for state in self._states.values():
                self._start(state)
            while not self._stopping.wait(self.poll_seconds):
                self._tick()
        except KeyboardInterrupt:
            pass
        finally:
            self._shutdown()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def stop(self) -> None:
        self._stopping.set()

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping.set()

    def _tick(self) -> None:
        now = time.monotonic()
        for state in self._states.values():
            process = state.process
            if process is not None:
                code = process.poll()
                if code is None:
                    continue
                self._kill_group(process.pid, signal.SIGKILL)  # what it left behind goes with it
                state.process = None
                up = now - state.started_at
                if up >= self.stable_seconds:
                    state.backoff = self.min_backoff
                state.restart_at = now + state.backoff
                self.log(
                    f"{state.program.name} exited ({describe_exit(code)}) after {up:.1f} s; "
                    f"restarting in {state.backoff:g} s"
                )
                state.backoff = min(state.backoff * 2, self.max_backoff)
            elif now >= state.restart_at:
                state.restarts += 1
                self._start(state)
                if self.on_restart is not None:
                    self.on_restart(state.program.name, state.restarts)

    def _start(self, state: _State) -> None:
        program = state.program
        try:
            process = subprocess.Popen(
                list(program.argv),
                env=program.env,
                cwd=program.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: killed whole, and Ctrl-C reaches only us
            )
        except OSError as exc:
            self.log(f"{program.name} could not start ({exc}); retrying in {state.backoff:g} s")
            state.restart_at = time.monotonic() + state.backoff
            state.backoff = min(state.backoff * 2, self.max_backoff)
            return
        state.process = process
        state.started_at = time.monotonic()
        self.log(f"{program.name} started (pid {process.pid})")
        state.reader = threading.Thread(
            target=self._copy_output, args=(program.name, process), name=f"supervisor-{program.name}", daemon=True
        )
        state.reader.start()

    def _copy_output(self, name: str, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        with process.stdout:
            for raw in iter(process.stdout.readline, b""):
                self.log(raw.decode("utf-8", "replace").rstrip("\n"), name=name)

    def _shutdown(self) -> None:
        running = [
            (s.program.name, s.process)
            for s in self._states.values()
            if s.process is not None and s.process.poll() is None
        ]
        for name, process in running:
            # The leader first, for its own clean shutdown (Celery's warm shutdown lets a running task
            # finish); its group is killed once it has exited or the grace period is over.
            self.log(f"stopping {name}")
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace_seconds
        for _, process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        for state in self._states.values():
            if state.process is not None:
                if state.process.poll() is None:
                    self.log(f"{state.program.name} still running after {self.stop_grace_seconds:g} s; killing it")
                self._kill_group(state.process.pid, signal.SIGKILL)
                state.process.wait()
                state.process = None
        for state in self._states.values():
            if state.reader is not None:
                state.reader.join(timeout=2)

    @staticmethod
    def _kill_group(pgid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
