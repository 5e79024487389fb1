"""The runner's own failures: each carries a stable code for the error event and a message we
wrote ourselves (never a library's, which may quote private cells)."""

from __future__ import annotations


class RunnerError(Exception):
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameters(RunnerError):
    code = "invalid_parameters"


class InvalidData(RunnerError):
    code = "invalid_data"
