"""Nobody is charged for our failure: a job that fails for a platform reason whose occurrence does
not depend on the data (the host's disk full, the sandbox not set up) is refunded on chain and its
epsilon released, even after the runner read the data, with a clear sentence. A failure the buyer
could cause through the data or the parameters (a runner crash) stays charged, whatever the runner
says about it."""

from __future__ import annotations

import contextlib
import errno
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.files.storage import FileSystemStorage

from chain.models import ChainListing, ChainTransaction, Wallet
from chain.wrappers import Datatoken, MockStablecoin
from compute_to_data import sandbox
from compute_to_data.failures import FAILURES, failure_for_run, failure_text, is_disk_full
from compute_to_data.models import ComputeJob, JobArtifact, PrivacyBudget
from compute_to_data.sandbox.launcher import root_mode_missing
from compute_to_data.services import execution
from tests.compute_to_data.support import job_submit, listed_on_chain
from tests.worker_support import wait_for

pytestmark = [pytest.mark.chain, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# A runner that fills its output folder until the disk says no, then dies of it (as a real one did,
# with "SafetensorError" where it tried to write its weights).
FILL_OUT = (
    "import json, sys\n"
    "spec = json.load(open(sys.argv[1]))\n"
    "with open(spec['output_dir'] + '/model.safetensors', 'wb') as fh:\n"
    "    while True:\n"
    "        fh.write(b'x' * 65536)\n"
    "        fh.flush()\n"
)
# A runner that crashes claiming the disk is full, on a disk with plenty of room.
CLAIMS_FULL = "import sys\nsys.stderr.write('OSError: [Errno 28] No space left on device\\n')\nsys.exit(1)\n"


class FullDiskStorage(FileSystemStorage):
    """Results storage on a disk with no room left."""

    def _save(self, name, content):
        raise OSError(errno.ENOSPC, "No space left on device")


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str = "1m"):
    """A small real file system at ``path`` (root and CAP_SYS_ADMIN only; else the test skips)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0711", "tmpfs", str(path)], check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> None:
    """Write ``path``'s file system full."""
    with open(path / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def _balance(on_chain, dataset, user) -> int:
    listing = ChainListing.objects.get(dataset=dataset)
    wallet = Wallet.objects.get(user=user, kind=Wallet.Kind.MANAGED)
    return MockStablecoin(on_chain.w3, listing.payment_token).balance_of(wallet.address)


def _assert_refunded(on_chain, dataset, job: dict, buyer, balance_before: int) -> None:
    assert job["budget_state"] == "released" and Decimal(job["epsilon_spent"]) == 0, job
    assert PrivacyBudget.objects.get(dataset=dataset).epsilon_reserved == 0
    assert PrivacyBudget.objects.get(dataset=dataset).epsilon_spent == 0
    assert job["settlement"] == "refund" and job["order_status"] == "refunded", job
    listing = ChainListing.objects.get(dataset=dataset)
    assert Datatoken(on_chain.w3, listing.datatoken_address).epsilon_ordered() == 0
    assert _balance(on_chain, dataset, buyer) == balance_before, "the buyer has the payment back"


def test_the_failure_table_says_who_pays():
    assert failure_for_run(limit=None, runner_error_code="internal", host_disk_full=True) == "disk_full"
    # The job's own disk limit is the buyer's, even when the host is full too.
    assert failure_for_run(limit="disk", runner_error_code=None, host_disk_full=True) == "limit_disk"
    # What the runner said about the data or the parameters stands: a full disk is no free retry for it.
    assert failure_for_run(limit=None, runner_error_code="invalid_parameters", host_disk_full=True) == "buyer_input"
    assert failure_for_run(limit=None, runner_error_code="internal") == "runner_error"
    refunded = {code for code, f in FAILURES.items() if f.after_data == "refund"}
    assert {"disk_full", "sandbox_setup", "chain_error", "no_sandbox", "cancelled_by_moderator"} <= refunded
    assert FAILURES["runner_error"].after_data == "charge" and FAILURES["buyer_input"].after_data == "charge"
    assert all(FAILURES[c].after_data == "charge" for c in FAILURES if c.startswith("limit_"))
    assert "disk was full" in failure_text("disk_full") and "SafetensorError" not in failure_text("disk_full")
    wrapped = RuntimeError("SafetensorError: I/O error")
    wrapped.__cause__ = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert is_disk_full(wrapped) and not is_disk_full(OSError(errno.EACCES, "denied"))


def test_a_full_results_storage_refunds_the_job_and_releases_its_epsilon(
    api, people, on_chain, compute_settings, settings
):
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    settings.STORAGES = {
        **settings.STORAGES,
        "results": {"BACKEND": f"{__name__}.FullDiskStorage", "OPTIONS": {"location": "/nonexistent"}},
    }
    before = _balance(on_chain, dataset, buyer)
    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.4})
    # The runner had read the data (and finished); publishing found no room.
    assert job["status"] == "failed" and job["failure"] == "disk_full", job
    assert job["failure_caused_by"] == "platform"
    assert job["reason"] == failure_text("disk_full")
    assert ComputeJob.objects.get(pk=job["id"]).data_touched_at is not None
    assert not JobArtifact.objects.filter(job_id=job["id"]).exists()
    _assert_refunded(on_chain, dataset, job, buyer, before)
    # The job page says so in words.
    from django.test import Client

    client = Client()
    client.force_login(buyer)
    page = client.get(f"/jobs/{job['id']}/").content.decode()
    assert "The worker&#x27;s disk was full" in page and "our fault: not yours" in page


def test_a_runner_that_cannot_write_on_a_full_host_disk_is_refunded(
    api, people, on_chain, fake_runner, compute_settings
):
    """The runner writes its outputs into the worker's workspace; when the host's file system is
    full (not the job's own disk limit, which is far larger here), that is the platform's fault.
    In root mode the workspace is the job's own tmpfs, sized to its limits: the host's disk is
    never where the runner writes, so filling it stops at the job's own disk limit instead."""
    root_mode = root_mode_missing(execution.sandbox_config()) is None
    compute_settings.COMPUTE_DISK_MB = 16 if root_mode else 256
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    fake_runner("fill_out", source=FILL_OUT)
    work = Path(compute_settings.COMPUTE_WORK_DIR)
    with tiny_tmpfs(work, "2m"):
        before = _balance(on_chain, dataset, buyer)
        job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.3})
        assert ComputeJob.objects.get(pk=job["id"]).data_touched_at is not None, "the runner had started"
        if root_mode:
            # 16 MB written into a 2 MB host file system: only the job's own mount held them.
            assert job["status"] == "failed" and job["failure"] == "limit_disk", job
            assert job["budget_state"] == "charged", job
        else:
            assert job["status"] == "failed" and job["failure"] == "disk_full", job
            assert job["limit_hit"] == ""
            _assert_refunded(on_chain, dataset, job, buyer, before)
        assert not any(work.iterdir()), "the workspace is gone"


def test_a_runner_crash_stays_charged_whatever_the_runner_says(api, people, on_chain, fake_runner, compute_settings):
    """A buyer cannot make a crash free by getting "No space left on device" into the runner's
    words: the worker measures its disk itself."""
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    fake_runner("claims_full", source=CLAIMS_FULL)
    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.3})
    assert job["status"] == "failed" and job["failure"] == "runner_error", job
    assert job["budget_state"] == "charged" and Decimal(job["epsilon_spent"]) == Decimal("0.3")
    assert job["order_status"] == "receipted"


def test_a_sandbox_that_cannot_start_after_the_spec_is_written_is_refunded(
    api, people, on_chain, compute_settings, monkeypatch
):
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)

    def cannot_start(self, **kwargs):
        raise sandbox.SandboxUnavailable("bwrap: setting up uid map: Permission denied")

    monkeypatch.setattr(sandbox.BubblewrapBackend, "run", cannot_start)
    before = _balance(on_chain, dataset, buyer)
    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.3})
    assert job["status"] == "failed" and job["failure"] == "sandbox_setup", job
    assert "uid map" not in job["reason"] and job["reason"] == failure_text("sandbox_setup")
    _assert_refunded(on_chain, dataset, job, buyer, before)


def test_a_full_results_disk_on_a_real_worker_is_refunded_on_chain(
    api, people, on_chain, compute_settings, compute_worker, tmp_path
):
    """Through the real parts: a Celery worker process, anvil, and a results folder on a real file
    system with no room left (ENOSPC from the kernel, not a stand-in)."""
    start, eager_again, log = compute_worker
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    results = tmp_path / "results"
    with tiny_tmpfs(results, "1m"):
        fill(results)
        before = _balance(on_chain, dataset, buyer)
        start(str(compute_settings.COMPUTE_RUNNER_DIR))
        api.force_authenticate(buyer)
        body = {"dataset": dataset.pk, "algorithm": "dp-statistics", "parameters": {"epsilon": 0.5}}
        response = api.post("/api/v1/jobs/", body, format="json")
        assert response.status_code == 202, response.content
        job_id = response.json()["id"]
        wait_for(lambda: ComputeJob.objects.get(pk=job_id).is_terminal, timeout=120, log=log)
        wait_for(lambda: ComputeJob.objects.get(pk=job_id).settlement == "refund", timeout=60, log=log)
        job = api.get(f"/api/v1/jobs/{job_id}/").json()
        assert job["status"] == "failed" and job["failure"] == "disk_full", job
        assert job["reason"] == failure_text("disk_full")
        _assert_refunded(on_chain, dataset, job, buyer, before)
        assert ChainTransaction.objects.filter(purpose="refund", status="mined").count() == 1
        files = [p for p in results.rglob("*") if p.is_file()]
        assert files == [results / "filler"], "nothing half-written is left in the results storage"
    eager_again()
