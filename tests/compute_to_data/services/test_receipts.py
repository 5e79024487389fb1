"""compute_to_data.services.receipts: the one place a job's receipt is built, as settlement records
it on chain and verification compares it with the chain."""

from decimal import Decimal

import pytest

from compute_to_data.models import ComputeJob
from compute_to_data.services import receipts
from tests.factories import UserFactory, make_dataset, make_reserved_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def job():
    dataset = make_dataset(owner=UserFactory())
    return make_reserved_job(dataset, UserFactory(), dataset_hash="0x" + "ab" * 32)


def test_a_finished_job_is_receipted_with_what_it_ran_and_released(job):
    job.status, job.runner_hash, job.result_hash = ComputeJob.Status.FINISHED, "0x" + "11" * 32, "0x" + "22" * 32
    job.epsilon_spent = Decimal("0.42")  # whatever the accountant reported: the receipt charges the reservation
    receipt = receipts.receipt_of(job)
    assert receipt == receipts.Receipt(
        dataset_hash="0x" + "ab" * 32,
        algorithm_hash="0x" + "11" * 32,
        params_hash=job.params_hash,
        result_hash="0x" + "22" * 32,
        epsilon_spent=job.epsilon,
    )


def test_a_job_that_released_nothing_is_receipted_with_its_failure_record_and_the_current_runner(job):
    job.status, job.reason = ComputeJob.Status.CANCELLED, "Stopped by its buyer."
    receipt = receipts.receipt_of(job)
    assert receipt.result_hash == receipts.failure_hash(job, job.status, job.reason)
    assert receipt.algorithm_hash == receipts.runner_code_hash()
    # Contracts v2: a receipt charges exactly the reservation, a stopped job's too.
    assert receipt.epsilon_spent == job.epsilon


def test_the_failure_record_hash_names_the_job_and_what_it_was_told(job):
    other = make_reserved_job(job.dataset, job.buyer)
    once = receipts.failure_hash(job, "failed", "Out of memory.")
    assert once == receipts.failure_hash(job, "failed", "Out of memory.")
    assert once != receipts.failure_hash(job, "failed", "Timed out.")
    assert once != receipts.failure_hash(other, "failed", "Out of memory.")


def test_the_result_hash_does_not_depend_on_the_order_artifacts_are_listed_in():
    pairs = [("weights.json", "aa" * 32), ("metrics.json", "bb" * 32)]
    assert receipts.result_hash_of(pairs) == receipts.result_hash_of(list(reversed(pairs)))
    assert receipts.result_hash_of(pairs) != receipts.result_hash_of([("weights.json", "aa" * 32)])


def test_the_runner_hash_follows_the_runner_code(tmp_path, settings):
    (tmp_path / "run.py").write_text("print('one')\n")
    settings.COMPUTE_RUNNER_DIR = str(tmp_path)
    before = receipts.runner_code_hash()
    assert before == receipts.runner_code_hash()
    (tmp_path / "run.py").write_text("print('two')\n")
    assert receipts.runner_code_hash() != before
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "cached.py").write_text("ignored\n")
    after = receipts.runner_code_hash()
    (tmp_path / "extra.py").write_text("\n")
    assert receipts.runner_code_hash() != after
