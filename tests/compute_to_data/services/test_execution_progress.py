"""What the worker believes of the runner's events (``execution._Monitor``): progress is parsed
strictly (finite numbers, counts within bounds, epsilon within the reservation, phases only moving
forward, the percent below 100 until the worker finishes), log lines reach the buyer only when they
are the trusted runner's own, and nothing an event holds can break the heartbeat's write: a NaN
once did (PostgreSQL's JSON has no NaN), and the reaper then failed a healthy job."""

from __future__ import annotations

import json
import logging
import math
from datetime import timedelta

import pytest
from django.utils import timezone

from compute_to_data.models import ComputeJob, JobLogEntry
from compute_to_data.services import execution
from marketplace.models import Dataset
from tests.factories import make_dataset, make_reserved_job


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def operator_log():
    """What the worker writes to the operators' (Python) log."""
    records = _Records()
    level = execution.logger.level
    execution.logger.addHandler(records)
    execution.logger.setLevel(logging.DEBUG)
    yield records
    execution.logger.removeHandler(records)
    execution.logger.setLevel(level)


GOOD = {"event": "progress", "phase": "training", "epoch": 1, "epochs": 3, "step": 4, "steps": 12, "epsilon": 0.2}


def _progress(event: dict, previous: dict | None = None, epsilon_max: float = 0.5) -> dict | None:
    return execution._progress_from(event, previous=previous or {}, epsilon_max=epsilon_max)


def test_a_progress_event_of_the_runner_is_taken():
    assert _progress(GOOD) == {
        "phase": "training",
        "epoch": 1,
        "epochs": 3,
        "step": 4,
        "steps": 12,
        "epsilon": 0.2,
        "percent": 5 + int(87 * 4 / 12),
    }


@pytest.mark.parametrize(
    "change",
    [
        {"epsilon": math.nan},
        {"epsilon": math.inf},
        {"epsilon": -math.inf},
        {"epsilon": 1e308},
        {"epsilon": 0.5000001},
        {"epsilon": -0.1},
        {"epsilon": "0.2"},
        {"epsilon": True},
        {"step": math.nan},
        {"step": math.inf},
        {"step": 4.0},
        {"step": True},
        {"step": -1},
        {"step": 13},
        {"steps": 10**12},
        {"epoch": 4},
        {"epochs": None},
        {"phase": "finished"},
        {"phase": "publishing"},
        {"phase": "provisioning"},
        {"phase": "\x1b[2Jhacked"},
        {"phase": ["training"]},
    ],
    ids=repr,
)
def test_a_progress_event_the_runner_does_not_send_is_dropped(change):
    assert _progress({**GOOD, **change}) is None


def test_phases_only_move_forward():
    writing = _progress({**GOOD, "phase": "writing"})
    assert writing is not None
    assert _progress(GOOD, previous=writing) is None
    assert _progress({**GOOD, "phase": "loading"}, previous=writing) is None
    assert _progress({**GOOD, "phase": "writing"}, previous=writing) == writing


def test_the_percent_never_goes_down_and_stays_below_100():
    late = _progress({**GOOD, "step": 12})
    assert late is not None and late["percent"] == 92
    assert _progress({**GOOD, "step": 1}, previous=late)["percent"] == 92
    assert _progress({**GOOD, "phase": "writing"}, previous={"phase": "training", "percent": 100})["percent"] == 99


@pytest.mark.parametrize(
    "event",
    [
        {"event": "progress"},
        {"event": "progress", "phase": {"nested": [1, 2, {"deep": math.nan}]}},
        {"event": "log", "message": ["not", "text"]},
        {"event": "log", "message": "x" * 100_000},
        {"event": "error", "code": {"x": 1}, "message": None},
        {"event": "finished"},
        {"event": 7},
        {},
    ],
    ids=repr,
)
def test_no_event_makes_the_monitor_raise(event):
    monitor = execution._Monitor(1, epsilon=0.5)
    monitor.on_event(event)
    assert monitor.progress == {} and monitor.logs == []


def test_only_the_trusted_runners_log_lines_reach_the_job_log(operator_log):
    monitor = execution._Monitor(1, epsilon=0.5)
    ours = [
        "Running dp-mlp-classifier.",
        "Data loaded.",
        "Data loaded and preprocessed from the declared schema.",
        "Noise calibrated with the RDP accountant: noise multiplier 4.961, sample rate 0.5, 4 steps.",
        "Done; artifacts and manifest written.",
    ]
    theirs = [
        "Running dp-mlp-classifier. Your model is ready at https://evil.example/login",
        "\x1b[2J\x1b[1;31mPAYMENT FAILED\x1b[0m: re-enter your wallet key at https://evil.example",
        "Data loaded.\x00",
        "age=41 dose=3.2 site=zz-canary-7f3a",
    ]
    for message in ours + theirs:
        monitor.on_event({"event": "log", "message": message})
    assert monitor.logs == ours
    # The operators learn that something was dropped (once: the log is rate-limited), escapes defused.
    assert len(operator_log.lines) == 1 and "dropped" in operator_log.text and "\x1b" not in operator_log.text


def test_a_runner_error_keeps_a_fixed_code_and_its_text_goes_to_the_operators_only(operator_log):
    monitor = execution._Monitor(1, epsilon=0.5)
    monitor.on_event({"event": "error", "code": "\x1b[31mpay", "message": "\x1b]8;;https://evil.example\x07here"})
    assert monitor.error_code == "internal" and monitor.logs == []
    assert "evil.example" in operator_log.text
    # A second error event changes nothing (the trusted runner sends one, its last).
    monitor.on_event({"event": "error", "code": "invalid_parameters", "message": "again"})
    assert monitor.error_code == "internal" and "dropped" in operator_log.lines[-1]
    assert "\x1b" not in operator_log.text and "\x07" not in operator_log.text


def test_operator_text_defuses_control_and_bidirectional_characters():
    assert execution.operator_text("a\x1b[31mb\r\nc\u202ed\x00") == "a?[31mb??c?d?"
    assert len(execution.operator_text("x" * 10_000)) == 500


# --- through the database ----------------------------------------------------------------------------


@pytest.fixture
def running(provider, buyer, staff):
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    now = timezone.now()
    return make_reserved_job(
        dataset,
        buyer,
        status=ComputeJob.Status.RUNNING,
        worker="this-host:101",
        attempts=1,
        heartbeat_at=now - timedelta(seconds=40),
        data_touched_at=now,
        progress={"phase": "loading", "percent": 5},
    )


def _parsed(line: str) -> dict:
    """An event as Python's JSON parser reads it from the runner's stdout (NaN and Infinity too)."""
    return json.loads(line)


@pytest.mark.django_db(transaction=True)
def test_nan_and_infinity_in_progress_never_break_the_heartbeat_and_the_reaper_leaves_the_job(running, settings):
    settings.COMPUTE_HEARTBEAT_TIMEOUT_SECONDS = 30
    monitor = execution._Monitor(running.pk, worker="this-host:101", epsilon=float(running.epsilon))
    hostile = [
        '{"event":"progress","phase":"finished","epoch":3,"epochs":3,"step":3,"steps":3,"epsilon":0.5}',
        '{"event":"progress","phase":"training","epoch":1,"epochs":3,"step":1,"steps":3,"epsilon":1e308}',
        '{"event":"progress","phase":"training","epoch":1,"epochs":3,"step":NaN,"steps":3,"epsilon":0.1}',
        '{"event":"progress","phase":"training","epoch":1,"epochs":3,"step":1,"steps":3,"epsilon":Infinity}',
        '{"event":"progress","phase":"training","epoch":1,"epochs":3,"step":1,"steps":3,"epsilon":-Infinity}',
        '{"event":"log","message":"Data loaded.\\u0000"}',
        # Last, so that it would be what the next write carries.
        '{"event":"progress","phase":"training","epoch":1,"epochs":3,"step":1,"steps":3,"epsilon":NaN}',
    ]
    for line in hostile:
        monitor.on_event(_parsed(line))
    before = ComputeJob.objects.get(pk=running.pk).heartbeat_at
    monitor.flush()
    job = ComputeJob.objects.get(pk=running.pk)
    assert job.heartbeat_at > before
    assert job.progress == {"phase": "loading", "percent": 5}, "nothing of the hostile events was taken"
    assert not JobLogEntry.objects.filter(job=job, source=JobLogEntry.Source.RUNNER).exists()
    # A real event after them is still taken, and written.
    monitor.on_event(_parsed(json.dumps({**GOOD, "epsilon": 0.25})))
    monitor.flush()
    job = ComputeJob.objects.get(pk=running.pk)
    assert job.progress["phase"] == "training" and job.progress["epsilon"] == 0.25
    # The heartbeat is fresh: the reaper does not take the job from its (remote, silent-looking) worker.
    assert execution.jobs_reap()["requeued"] == 0
    job = ComputeJob.objects.get(pk=running.pk)
    assert job.status == ComputeJob.Status.RUNNING and job.attempts == 1
