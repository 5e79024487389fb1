"""The runner's stdout protocol: one JSON object per line and nothing else.

``progress`` events can be rate-limited (at most one per ``min_interval`` seconds unless forced);
the runner forces every one it sends, on a schedule of public step numbers, so which events go out
never depends on how fast the private data trains. Their epsilon is the accountant's epsilon so
far, a function of public hyper-parameters only. ``log`` messages are fixed templates written by
the runner itself with public values only: never row values, library exception messages, counts
of private rows or host names."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import IO, Any


class Events:
    """Writes protocol events to ``stream`` (flushed per line)."""

    def __init__(
        self, stream: IO[str], *, min_interval: float = 0.2, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = stream
        self.min_interval = min_interval
        self.clock = clock
        self._last_progress = -math.inf

    def emit(self, event: dict[str, Any]) -> None:
        self.stream.write(json.dumps(event, allow_nan=False, separators=(",", ":")) + "\n")
        self.stream.flush()

    def progress(
        self, phase: str, *, epoch: int, epochs: int, step: int, steps: int, epsilon: float, force: bool = False
    ) -> bool:
        """Emit a progress event unless one went out less than ``min_interval`` ago (``force``
        overrides); returns whether it was emitted."""
        now = self.clock()
        if not force and now - self._last_progress < self.min_interval:
            return False
        self._last_progress = now
        self.emit(
            {
                "event": "progress",
                "phase": phase,
                "epoch": int(epoch),
                "epochs": int(epochs),
                "step": int(step),
                "steps": int(steps),
                "epsilon": float(epsilon) if math.isfinite(epsilon) else 0.0,
            }
        )
        return True

    def log(self, message: str) -> None:
        self.emit({"event": "log", "message": message})

    def error(self, code: str, message: str) -> None:
        self.emit({"event": "error", "code": code, "message": message})
