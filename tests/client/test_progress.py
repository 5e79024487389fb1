"""marketplace_client.progress: the terminal progress bar."""

from __future__ import annotations

import io

from marketplace_client.progress import ProgressBar, render
from marketplace_client.types import Job
from tests.client.support import _job

# --- progress bar -----------------------------------------------------------------------------


def test_the_progress_bar_shows_phase_epoch_step_and_epsilon():
    job = Job.from_json(_job())
    assert render(job, width=10) == (
        "job 7 [####------]  40% running | training | epoch 2/5 | step 16/40 | eps 0.21/0.50"
    )
    done = Job.from_json(_job(status="finished", progress={"percent": 97}, epsilon_spent="0.4987"))
    assert render(done, width=10) == "job 7 [##########] 100% finished | eps spent 0.50/0.50"
    failed = Job.from_json(_job(status="failed", progress={"percent": 0}, reason="Out of memory.\nmore"))
    assert render(failed, width=4) == "job 7 [----]   0% failed | Out of memory."
    queued = Job.from_json(_job(status="queued", progress={}))
    assert render(queued, width=4) == "job 7 [----]   0% queued"


def test_the_progress_bar_redraws_in_place_and_ends_the_line():
    stream = io.StringIO()
    with ProgressBar(stream, width=4) as bar:
        bar.update(Job.from_json(_job(status="queued", progress={}, reason="")))
        bar.update(Job.from_json(_job(status="queued", progress={}, reason="")))  # same: not redrawn
        bar.update(Job.from_json(_job()))
        bar.update(Job.from_json(_job(status="finished", progress={"percent": 100}, epsilon_spent="0.5")))
    text = stream.getvalue()
    frames = text.split("\r")[1:]
    assert len(frames) == 3 and text.endswith("\n")
    assert frames[0] == "job 7 [----]   0% queued"
    assert frames[2].startswith("job 7 [####] 100% finished | eps spent 0.50/0.50")
    assert len(frames[2].rstrip("\n")) >= len(frames[1])  # padded over the longer line before
    silent = io.StringIO()
    with ProgressBar(silent, enabled=False) as bar:
        bar.update(Job.from_json(_job()))
    assert silent.getvalue() == ""
