"""A one-line text progress bar for a compute job, redrawn in place with ``\\r`` on stderr.

    job 12 [#########---------------]  38% running | training | epoch 2/5 | step 40/120 | eps 0.21/0.50

No dependency: on a terminal the line is cut to its width; elsewhere (a log, a pipe) each
redraw is still one ``\\r``-separated line, so a captured stream shows every state it went
through."""

from __future__ import annotations

import shutil
import sys
from typing import TextIO

from marketplace_client.types import Job

__all__ = ["ProgressBar", "render"]

FILL, EMPTY = "#", "-"


def _eps(value: object) -> str:
    try:
        return f"{float(str(value)):.2f}"
    except (TypeError, ValueError):
        return "?"


def render(job: Job, *, width: int = 24) -> str:
    """The bar's text for one state of a job (no ``\\r``, no newline)."""
    percent = max(0, min(100, 100 if job.status == "finished" else job.progress.percent))
    filled = round(width * percent / 100)
    bar = FILL * filled + EMPTY * (width - filled)
    parts = [f"job {job.id} [{bar}] {percent:3d}% {job.status}"]
    progress = job.progress
    if job.is_terminal:
        if job.status == "finished":
            spent = job.epsilon_spent if job.epsilon_spent is not None else progress.epsilon
            parts.append(f"eps spent {_eps(spent)}/{_eps(job.epsilon)}")
        elif job.reason:
            parts.append(job.reason.splitlines()[0][:120])
        return " | ".join(parts)
    if progress.phase and progress.phase != job.status:
        parts.append(progress.phase)
    if progress.epoch is not None:
        parts.append(f"epoch {progress.epoch}/{progress.epochs}" if progress.epochs else f"epoch {progress.epoch}")
    if progress.step is not None and progress.steps:
        parts.append(f"step {progress.step}/{progress.steps}")
    if progress.epsilon is not None:
        parts.append(f"eps {_eps(progress.epsilon)}/{_eps(job.epsilon)}")
    if job.cancelling:
        parts.append("cancelling")
    return " | ".join(parts)


class ProgressBar:
    """Draws :func:`render` in place on ``stream`` (stderr by default). Call ``update(job)``
    with each new state and ``close()`` once at the end (it ends the line)."""

    def __init__(self, stream: TextIO | None = None, *, width: int = 24, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.enabled = enabled
        self._last = ""
        self._drawn = 0
        isatty = getattr(self.stream, "isatty", None)
        self._tty = bool(isatty and isatty())

    def update(self, job: Job) -> None:
        if not self.enabled:
            return
        line = render(job, width=self.width)
        if line == self._last:
            return
        self._last = line
        if self._tty:
            columns = shutil.get_terminal_size((100, 20)).columns
            line = line[: max(20, columns - 1)]
        pad = max(0, self._drawn - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self._drawn = len(line)

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
