"""A finished job's results (the buyer's alone) and its receipt (buyer and provider), with the
check anyone can repeat: recompute every hash from what the marketplace holds and compare it
with the ``ReceiptRecorded`` event on chain."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import IO, Any

from chain import client
from chain.models import Order
from chain.units import delta_to_units, units_to_delta, units_to_epsilon
from chain.wrappers import Datatoken
from common.errors import Conflict, NotFound
from compute_to_data.models import ComputeJob, JobArtifact
from compute_to_data.services.execution import results_storage
from compute_to_data.services.jobs import job_require_buyer
from compute_to_data.services.receipts import failure_hash, params_hash, receipt_of, result_hash_of, runner_code_hash
from marketplace.models import User


def artifact_open(*, job: ComputeJob, user: User, name: str) -> tuple[JobArtifact, IO[bytes]]:
    """An artifact of a finished job, opened for download by its buyer."""
    job_require_buyer(job=job, user=user)
    if job.status != ComputeJob.Status.FINISHED:
        raise Conflict("This job has no results (it has not finished).", code="no_results")
    artifact = job.artifacts.filter(name=name).first()
    if artifact is None:
        raise NotFound("No such artifact.")
    return artifact, results_storage().open(artifact.storage_name, "rb")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: cannot be checked yet
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def _sha256_stored(artifact: JobArtifact) -> str:
    digest = hashlib.sha256()
    with results_storage().open(artifact.storage_name, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def receipt_verify(*, job: ComputeJob) -> list[Check]:
    """Recompute the receipt from what we hold and compare with the chain. Every check says what
    it compared; ``ok`` is None for what cannot be checked yet (no receipt on chain)."""
    checks: list[Check] = []
    dataset_ok = job.dataset_hash == job.dataset.commitment
    checks.append(
        Check("dataset", dataset_ok, f"The dataset's public commitment, SHA-256(salt || file): {job.dataset_hash}")
    )
    recomputed = params_hash(job.algorithm, job.parameters)
    checks.append(
        Check("parameters", recomputed == job.params_hash, f"SHA-256 of the algorithm and parameters: {recomputed}")
    )
    if job.order is not None:
        committed = job.order.algorithm_hash.lower() == job.params_hash.lower()
        checks.append(Check("order", committed, "The order paid on chain committed to these parameters."))
    current_runner = runner_code_hash()
    if job.runner_hash:
        same = job.runner_hash == current_runner
        checks.append(
            Check(
                "runner",
                True,
                f"SHA-256 of the runner code that ran: {job.runner_hash}"
                + ("" if same else " (the runner has been updated since)"),
            )
        )
    if job.status == ComputeJob.Status.FINISHED:
        artifacts = list(job.artifacts.all())
        rehashed = {a.name: _sha256_stored(a) for a in artifacts}
        mismatched = [a.name for a in artifacts if rehashed[a.name] != a.sha256]
        recomputed_result = result_hash_of(list(rehashed.items()))
        checks.append(
            Check(
                "results",
                not mismatched and recomputed_result == job.result_hash,
                f"SHA-256 over {len(artifacts)} artifacts: {recomputed_result}"
                + (f"; changed: {', '.join(mismatched)}" if mismatched else ""),
            )
        )
    elif job.result_hash:
        expected = failure_hash(job, job.status, job.reason)
        checks.append(Check("results", expected == job.result_hash, "Hash of the failure record (nothing released)."))
    checks.extend(_chain_checks(job))
    return checks


def _chain_checks(job: ComputeJob) -> list[Check]:
    order = job.order
    if order is None or order.status != Order.Status.RECEIPTED or not order.receipt:
        state = order.status if order else "missing"
        return [Check("chain", None, f"No receipt on chain yet (order {state}).")]
    receipt = client.web3().eth.get_transaction_receipt(order.receipt["tx_hash"])
    events = Datatoken(client.web3(), order.listing.datatoken_address).receipt_events(receipt)
    event = next((e for e in events if int(e["orderId"]) == order.chain_order_id), None)
    if event is None:
        return [Check("chain", False, "The receipt transaction carries no receipt for this order.")]

    def hexed(value: bytes | str) -> str:
        return value if isinstance(value, str) else "0x" + bytes(value).hex()

    ours = receipt_of(job)
    pairs = [
        ("dataset", hexed(event["datasetHash"]), ours.dataset_hash),
        ("runner", hexed(event["algorithmHash"]), ours.algorithm_hash),
        ("parameters", hexed(event["paramsHash"]), ours.params_hash),
        ("results", hexed(event["resultHash"]), ours.result_hash),
    ]
    checks = [
        Check(f"chain {name}", on_chain.lower() == built.lower(), f"On chain: {on_chain}")
        for name, on_chain, built in pairs
    ]
    # A receipt charges exactly the order's reservation (contracts v2): epsilon and delta.
    spent = units_to_epsilon(int(event["epsilon"]))
    checks.append(
        Check(
            "chain epsilon",
            spent == ours.epsilon_spent,
            f"Epsilon charged on chain: {spent}",
        )
    )
    delta = units_to_delta(int(event["delta"]))
    checks.append(
        Check("chain delta", delta_to_units(delta) == delta_to_units(job.delta), f"Delta charged on chain: {delta:g}")
    )
    # The event was picked by its orderId, which is this order's chain_order_id.
    on_chain_status = Datatoken(client.web3(), order.listing.datatoken_address).order_status(int(event["orderId"]))
    checks.append(
        Check(
            "chain order",
            on_chain_status == "receipted",
            f"Order {order.chain_order_id} is {on_chain_status} on chain (block {order.receipt.get('block_number')}).",
        )
    )
    return checks
