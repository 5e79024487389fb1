"""Compute-job latency on the embedded stack: SQLite, the SQLite broker, a real Celery worker
process (``-Q celery,compute``, prefork, as in ``make run``), a real anvil, the real sandbox.

Run from the repository root (needs ``npm ci`` for anvil and bubblewrap)::

    .venv/bin/python bench/job_latency.py [--jobs 5]

Two figures:

* orchestration overhead: from the order verified on chain (``Order.confirmed_at``, written by the
  worker) to the job ``finished`` (artifacts stored, budget charged, receipt enqueued), minus the
  runner's own time (the sandboxed runner process from start to exit, which includes the
  interpreter start and importing torch), all read from the worker's log entries of the job (its
  released stamps are coarse). Median over ``--jobs`` jobs.
* sandbox ratio: the same job's runner run with bubblewrap and without (same interpreter, same
  rlimits, same spec), alternating, median of each.

Anchors: Ocean's compute-to-data, measured on a real job, spends 4.8 s before the algorithm starts
and 2.0 s after it ends."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import remove_tree, report, setup_django  # noqa: E402

OVERHEAD_TARGET = 0.5  # s
SANDBOX_TARGET = 1.1
PARAMETERS = {"target": "label", "features": ["age", "dose", "site"], "epochs": 2, "batch_size": 64, "epsilon": 0.2}


def _wait(predicate, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"timed out waiting for {what}\n{tail}")


def _csv(rows: int = 2000) -> bytes:
    import numpy as np

    rng = np.random.default_rng(3)
    lines = ["age,dose,site,score,label"]
    for _ in range(rows):
        age, dose = int(rng.integers(20, 80)), float(rng.uniform(0, 10))
        signal = dose / 10 + 0.5 * (age - 20) / 60 + rng.normal(0, 0.1)
        site = ["north", "south", "east"][int(rng.integers(0, 3))]
        lines.append(f"{age},{dose:.3f},{site},{20 + 60 * signal:.3f},{'true' if signal > 0.75 else 'false'}")
    return ("\n".join(lines) + "\n").encode()


def run(jobs: int, data_dir: Path) -> None:
    import io

    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from chain import client
    from chain.faucet import fund_address
    from chain.models import ChainListing
    from chain.services.publishing import dataset_publish
    from chain.services.wallets import wallet_managed_get_or_create
    from compute_to_data.models import ComputeJob
    from compute_to_data.services import execution
    from compute_to_data.services.jobs import job_create
    from devtools.embedded import start_embedded_chain
    from marketplace.models import Dataset, User
    from marketplace.services.datasets import ListingFields, dataset_create, dataset_schema_declare
    from marketplace.services.moderation import dataset_transition

    call_command("migrate", verbosity=0, interactive=False)
    embedded = start_embedded_chain(data_dir)
    worker = None
    log = data_dir / "worker.log"
    try:
        env = embedded.environment(data_dir / "chain" / "deployments.json")
        os.environ.update(env)
        settings.CHAIN_RPC_URL = env["CHAIN_RPC_URL"]
        settings.CHAIN_DEPLOYMENT_FILE = env["CHAIN_DEPLOYMENT_FILE"]
        settings.CHAIN_OPERATOR_KEY = env["CHAIN_OPERATOR_KEY"]
        client.reset_caches()
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "celery,compute",
                "--concurrency",
                "2",
                "--loglevel",
                "WARNING",
                "--without-heartbeat",
                "--without-mingle",
                "--without-gossip",
            ],
            env={**os.environ},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent,
        )
        provider = User.objects.create_user(  # a confirmed e-mail: it submits a dataset for review
            "bench-provider",
            email="bench-provider@example.org",
            password="x",  # noqa: S106
            email_verified_at=timezone.now(),
        )
        buyer = User.objects.create_user("bench-buyer", password="x")  # noqa: S106
        admin = User.objects.create_user("bench-admin", password="x", is_staff=True)  # noqa: S106
        w3 = client.web3()
        for user in (provider, buyer):
            fund_address(w3, embedded.deployment, wallet_managed_get_or_create(user=user).address, stablecoin=10_000)
        fh = io.BytesIO(_csv())
        fh.name = "trial.csv"
        dataset = dataset_create(
            owner=provider, file=fh, filename="trial.csv", fields=ListingFields(title="Bench trial", price="1")
        )
        _wait(lambda: Dataset.objects.get(pk=dataset.pk).validation == Dataset.Validation.VALID, 60, "validation", log)
        dataset.refresh_from_db()
        Dataset.objects.filter(pk=dataset.pk).update(epsilon_total=100, epsilon_per_job=1)
        dataset.refresh_from_db()
        dataset = dataset_schema_declare(
            dataset=dataset, actor=provider, schema=dataset.proposed_schema, public_row_count=dataset.row_count
        )
        dataset = dataset_transition(dataset=dataset, actor=provider, action="submit", reason="bench")
        dataset = dataset_transition(dataset=dataset, actor=admin, action="approve", reason="bench")
        dataset_publish(dataset=dataset, user=provider)
        _wait(
            lambda: ChainListing.objects.filter(dataset=dataset, state=ChainListing.State.PUBLISHED).exists(),
            90,
            "the listing on chain",
            log,
        )

        overheads, before, after, runner = [], [], [], []
        for i in range(jobs + 1):  # the first job warms the worker's caches; not counted
            job = job_create(user=buyer, dataset=dataset, algorithm="dp-logistic-regression", parameters=PARAMETERS)
            job = _wait(
                lambda job_id=job.pk: (
                    (j := ComputeJob.objects.select_related("order").get(pk=job_id)).is_terminal and j
                ),
                180,
                f"job {job.pk}",
                log,
            )
            if job.status != ComputeJob.Status.FINISHED:
                raise RuntimeError(f"job {job.pk} ended {job.status}: {job.reason}")
            if i == 0:
                continue
            ready, ran, published = _log_stamps(job)
            before.append((ready - job.order.confirmed_at).total_seconds())
            after.append((published - ran).total_seconds())
            overheads.append(before[-1] + after[-1])
            runner.append((ran - ready).total_seconds())
        report(
            "job orchestration overhead (verified order -> finished, minus runner time)",
            statistics.median(overheads),
            "s",
            target=f"<= {OVERHEAD_TARGET} s",
            ok=statistics.median(overheads) <= OVERHEAD_TARGET,
            anchor="Ocean compute-to-data 4.8 s before + 2.0 s after the algorithm",
            fmt="{:.3f}",
        )
        report(
            "  of which before the runner starts (queue, reservation, decrypt, sandbox set-up)",
            statistics.median(before),
            "s",
            fmt="{:.3f}",
        )
        report(
            "  of which after the runner exits (artifacts, hashes, budget, receipt enqueued)",
            statistics.median(after),
            "s",
            fmt="{:.3f}",
        )
        report(
            "runner time (sandboxed process incl. interpreter start and torch import)",
            statistics.median(runner),
            "s",
            fmt="{:.2f}",
        )

        # Sandboxed vs unsandboxed: the same spec, the same interpreter and limits.
        job = ComputeJob.objects.filter(status=ComputeJob.Status.FINISHED).first()
        times: dict[str, list[float]] = {"bubblewrap": [], "unsandboxed": []}
        for _ in range(5):
            for backend in times:
                times[backend].append(_runner_time(job, backend, execution))
        ratio = statistics.median(times["bubblewrap"]) / statistics.median(times["unsandboxed"])
        report("runner in sandbox, median", statistics.median(times["bubblewrap"]), "s", fmt="{:.3f}")
        report("runner without sandbox, median", statistics.median(times["unsandboxed"]), "s", fmt="{:.3f}")
        report(
            "sandbox ratio (sandboxed / unsandboxed runner time)",
            ratio,
            "x",
            target=f"<= {SANDBOX_TARGET}",
            ok=ratio <= SANDBOX_TARGET,
            fmt="{:.3f}",
        )
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
        embedded.node.stop()


def _log_stamps(job):
    """When the worker logged the sandbox ready, the runner finished and the results published.
    The job's own stamps and ``runner_seconds`` are released rounded to the minute (a side
    channel on the data otherwise), so the figures come from the platform's log entries."""
    from compute_to_data.models import JobLogEntry

    entries = list(JobLogEntry.objects.filter(job=job, source=JobLogEntry.Source.PLATFORM).order_by("created_at"))

    def first(prefix: str):
        return next(e.created_at for e in entries if e.message.startswith(prefix))

    return first("Sandbox ready"), first("Runner finished."), first("Published ")


def _runner_time(job, backend_name: str, execution) -> float:
    """One run of the job's runner in the backend named ``backend_name``, chosen here explicitly: the
    unsandboxed one exists for this comparison (and tests), never for the worker's jobs."""
    from compute_to_data import sandbox

    config = execution.sandbox_config()
    backend = sandbox.backend_named(backend_name)
    from django.conf import settings

    with sandbox.workspace(Path(settings.COMPUTE_WORK_DIR), f"bench-{backend_name}", config) as ws:
        execution._provision(job, ws, backend)
        outcome = backend.run(
            config=config,
            workspace=ws,
            argv=execution.runner_argv(backend, ws),
            limits=execution.sandbox_limits(),
            on_event=lambda event: None,
        )
        if not outcome.ok:
            raise RuntimeError(f"runner failed ({backend_name}): {outcome.reason}\n{outcome.stderr_tail}")
        return outcome.wall_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5)
    args = parser.parse_args()
    data_dir = setup_django(database_url=None, prefix="ppdx-bench-jobs-")
    try:
        run(args.jobs, data_dir)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    finally:
        remove_tree(data_dir)


if __name__ == "__main__":
    main()
