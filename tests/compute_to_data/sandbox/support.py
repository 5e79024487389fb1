"""What the sandbox tests share: small limits, the processes of a uid, and a run's outcome with its events."""

from __future__ import annotations

import dataclasses
import os
import time

from compute_to_data.sandbox import Limits, Outcome, SandboxConfig, Workspace, sandbox_run

SMALL = Limits(wall_seconds=10, memory_bytes=1 << 30, processes=32, disk_bytes=64 << 20, cpu_seconds=20)


def uid_processes(uid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as fh:
                for line in fh:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(name))
                        break
        except OSError:
            continue
    return pids


def wait_no_processes(uid: int, seconds: float = 3.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := uid_processes(uid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@dataclasses.dataclass
class Run:
    outcome: Outcome
    events: list[dict]
    uid: int = -1  # the uid the job ran as

    def messages(self) -> str:
        return "\n".join(str(e.get("message", "")) for e in self.events)

    def assert_contained(self) -> None:
        assert "ESCAPED" not in self.messages(), self.messages()
        assert not self.outcome.ok, self.outcome


def run_code(
    config: SandboxConfig, ws: Workspace, code: str, limits: Limits = SMALL, *, run=sandbox_run, **kwargs: object
) -> Run:
    events: list[dict] = []
    outcome = run(
        config=config, workspace=ws, argv=["python3", "-c", code], limits=limits, on_event=events.append, **kwargs
    )
    return Run(outcome, events)
