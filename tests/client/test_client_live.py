"""The integrator's client and command-line tool against a live server: pytest-django's live
server, a real Celery worker, the test anvil. The CLI runs as a separate process
(``python -m marketplace_client``), exactly as an integrator would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from chain.models import ChainListing, Order
from compute_to_data.models import ComputeJob
from marketplace.models import Dataset
from marketplace.services.moderation import dataset_transition
from marketplace_client import AuthenticationError, InvalidRequest, MarketplaceClient, NotFound
from tests.browser_support import FACTORY_PASSWORD
from tests.compute_to_data.support import training_csv

pytestmark = [pytest.mark.integration, pytest.mark.chain, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def cli(url: str, *args: str, token: str | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MARKETPLACE_", "DJANGO_"))}
    env["MARKETPLACE_URL"] = url
    if token:
        env["MARKETPLACE_TOKEN"] = token
    # Bytes, not text=True: universal newlines would turn the progress bar's "\r" into "\n".
    done = subprocess.run(
        [sys.executable, "-m", "marketplace_client", *args], cwd=ROOT, env=env, capture_output=True, timeout=timeout
    )
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


class RecordingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        self.urls.append(url)
        return super().request(method, url, *args, **kwargs)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def test_an_integrator_searches_publishes_runs_a_job_downloads_and_verifies_from_the_command_line(stack, tmp_path):
    listed = stack.listed(title="Cardiology outpatients", price="3", epsilon_total="10", per_job="2")

    # --- search: the Python client and the CLI ----------------------------------------------
    client = MarketplaceClient(stack.url)
    page = client.datasets("cardiology")
    assert [d.id for d in page.results] == [listed.pk]
    assert page.results[0].price == Decimal("3") and page.results[0].epsilon_per_job == Decimal("2")
    assert [d.id for d in client.iter_datasets(page_size=1)] == [listed.pk]
    found = json.loads(ok(cli(stack.url, "search", "cardiology", "--json")).stdout)
    assert found["count"] == 1 and found["results"][0]["id"] == listed.pk
    table = ok(cli(stack.url, "search", "--sort", "price")).stdout
    assert "Cardiology outpatients" in table

    # --- the provider publishes a new dataset end to end with the CLI ---------------------------
    token = ok(cli(stack.url, "login", "-u", "provider", "-p", FACTORY_PASSWORD)).stdout.strip()
    assert len(token) == 40
    csv = tmp_path / "trial.csv"
    csv.write_bytes(training_csv(rows=200, seed=3))
    published = cli(
        stack.url,
        "publish",
        str(csv),
        "--title",
        "Dosage trial",
        "--tags",
        "health,trial",
        "--price",
        "2",
        "--epsilon-total",
        "6",
        "--epsilon-per-job",
        "1.5",
        "--delta",
        "1e-6",
        token=token,
    )
    ok(published)
    new_id = int(published.stdout.strip())
    for step in (
        "uploaded: dataset",
        "validated: 200 rows",
        "schema confirmed: 5 columns",
        "submitted for review",
        "published on chain: datatoken 0x",
    ):
        assert step in published.stderr, published.stderr
    dataset = Dataset.objects.get(pk=new_id)
    assert dataset.owner == stack.provider and dataset.status == Dataset.Status.PENDING_REVIEW
    # The proposal as is, less the owner-only notes on it.
    proposal = [{k: v for k, v in c.items() if k != "note"} for c in dataset.proposed_schema["columns"]]
    assert dataset.declared_schema == {"columns": proposal}
    assert dataset.public_row_count == 200, "the suggestion: the row count to 2 significant figures"
    assert dataset.epsilon_per_job == Decimal("1.5") and sorted(t.name for t in dataset.tags.all()) == [
        "health",
        "trial",
    ]
    assert ChainListing.objects.get(dataset=dataset).state == ChainListing.State.PUBLISHED
    # A moderator approves it; then the catalogue (and the CLI) shows it.
    dataset_transition(dataset=dataset, actor=stack.staff, action="approve", reason="Looks right.")
    shown = ok(cli(stack.url, "show", str(new_id))).stdout
    assert "Dosage trial  [listed]" in shown and "budget left 6.0000" in shown
    assert "label" in shown and "on chain: published" in shown

    # --- the buyer quotes and runs a job, following it with the progress bar -------------------
    buyer_token = MarketplaceClient(stack.url).login("buyer", FACTORY_PASSWORD)
    params = ["-p", "target=label", "-p", "epochs=3", "-p", "batch_size=32", "-p", "epsilon=1.0"]
    quote = json.loads(
        ok(
            cli(stack.url, "quote", str(listed.pk), "dp-logistic-regression", *params, "--json", token=buyer_token)
        ).stdout
    )
    assert quote["problems"] == [] and quote["epsilon"] == "1.0000"
    run = cli(stack.url, "run", str(listed.pk), "dp-logistic-regression", *params, token=buyer_token)
    ok(run)
    job = ComputeJob.objects.get(buyer=stack.buyer)
    assert run.stdout.startswith(f"job {job.pk} finished; epsilon spent ")
    assert run.stderr.startswith(f"job {job.pk} created on dataset {listed.pk} (dp-logistic-regression")
    frames = [f.strip() for f in run.stderr.split("\r")[1:]]
    assert "\n" not in "".join(frames[:-1]), "the bar is redrawn in place, on one line"
    assert frames[-1].startswith(f"job {job.pk} [########################] 100% finished | eps spent ")
    assert any(" running" in f or " queued" in f or " paid" in f for f in frames[:-1]), frames
    assert job.status == ComputeJob.Status.FINISHED and job.epsilon_spent <= Decimal("1.0")
    jobs_table = ok(cli(stack.url, "jobs", token=buyer_token)).stdout
    assert "dp-logistic-regression" in jobs_table and "finished" in jobs_table

    # --- results: every artifact, checked against its SHA-256 ----------------------------------
    out = tmp_path / "downloaded"  # (tmp_path/results is the server's results storage)
    downloaded = ok(cli(stack.url, "results", str(job.pk), "-o", str(out), token=buyer_token))
    names = {a.name for a in job.artifacts.all()}
    assert {"model.safetensors", "model.onnx", "manifest.json"} <= names
    assert {Path(p).name for p in downloaded.stdout.split()} == names
    assert {p.name for p in out.iterdir()} == names | {f"job-{job.pk}-result.json"}

    # --- verify: the server's checks against the chain, and the local files re-hashed ----------
    # (verify waits, 30 s by default, for the receipt to go on chain a moment after the job ended)
    verified = ok(cli(stack.url, "verify", str(job.pk), "--dir", str(out), "--wait", "90", token=buyer_token))
    assert Order.objects.get(pk=job.order_id).status == Order.Status.RECEIPTED
    assert verified.stdout.strip().endswith(f"job {job.pk}: verified")
    assert "ok   chain results " in verified.stdout and "ok   local result hash " in verified.stdout
    as_json = cli(stack.url, "verify", str(job.pk), "--dir", str(out), "--json", token=buyer_token)
    report = json.loads(ok(as_json).stdout)
    assert report["ok"] is True and {c["source"] for c in report["checks"]} == {"server", "local"}

    manifest = out / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b"epsilon", b"EPSILON", 1))
    tampered = cli(stack.url, "verify", str(job.pk), "--dir", str(out), token=buyer_token)
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert "FAIL local manifest.json " in tampered.stdout and "FAIL local result hash " in tampered.stdout
    assert tampered.stdout.strip().endswith(f"job {job.pk}: MISMATCH")
    # The server's own checks still pass: what it holds was not touched.
    assert "ok   chain results " in tampered.stdout

    # --- the Python API follows a job over server-sent events, not by polling ------------------
    session = RecordingSession()
    client = MarketplaceClient(stack.url, token=buyer_token, session=session)
    second = client.job_create(listed.pk, "dp-statistics", {"epsilon": 0.5})
    seen: list[str] = []
    finished = client.follow_job(second.id, on_update=lambda j: seen.append(j.status), timeout=180)
    assert finished.succeeded and seen[-1] == "finished" and len(seen) >= 2, seen
    assert any(url.endswith(f"/jobs/{second.id}/events/") for url in session.urls)
    polls = [url for url in session.urls if url.endswith(f"/jobs/{second.id}/")]
    assert len(polls) <= 5, f"followed by polling: {len(polls)} reads"
    assert "statistics.json" in {a.name for a in client.job_result(second.id).artifacts}


def test_errors_reach_the_integrator_as_exit_codes_and_messages(stack, tmp_path):
    listed = stack.listed(title="Cardiology outpatients")
    token = MarketplaceClient(stack.url).login("buyer", FACTORY_PASSWORD)

    bad_token = cli(stack.url, "jobs", token="0" * 40)
    assert bad_token.returncode == 3
    assert "error: Invalid token. [401 authentication_failed]" in bad_token.stderr
    no_token = cli(stack.url, "run", str(listed.pk), "dp-statistics", "-p", "epsilon=0.5")
    assert no_token.returncode == 3 and "not_authenticated" in no_token.stderr
    wrong_password = cli(stack.url, "login", "-u", "buyer", "-p", "nope")
    assert wrong_password.returncode == 3 and "Unable to sign in with those credentials." in wrong_password.stderr

    invalid = cli(
        stack.url,
        "quote",
        str(listed.pk),
        "dp-logistic-regression",
        "-p",
        "target=label",
        "-p",
        "epochs=999",
        "-p",
        "epsilon=1",
        token=token,
    )
    assert invalid.returncode == 6, invalid.stderr
    assert "epochs" in invalid.stderr and "[400 " in invalid.stderr
    as_json = cli(
        stack.url,
        "quote",
        str(listed.pk),
        "dp-logistic-regression",
        "-p",
        "target=nope",
        "-p",
        "epsilon=1",
        "--json",
        token=token,
    )
    assert as_json.returncode == 6 and json.loads(as_json.stdout)["error"]["status"] == 400

    missing = cli(stack.url, "show", "999999")
    assert missing.returncode == 5 and "[404 not_found]" in missing.stderr
    over_budget = cli(stack.url, "run", str(listed.pk), "dp-statistics", "-p", "epsilon=5", token=token)
    assert over_budget.returncode in (6, 7), over_budget.stderr  # over the per-job cap of 2
    unreachable = cli("http://127.0.0.1:9", "search")
    assert unreachable.returncode == 9 and "Could not reach" in unreachable.stderr

    # The same errors through the Python API.
    client = MarketplaceClient(stack.url, token="0" * 40)
    with pytest.raises(AuthenticationError):
        client.jobs()
    client.token = token
    with pytest.raises(InvalidRequest) as caught:
        client.job_quote(listed.pk, "dp-logistic-regression", {"target": "label", "epochs": 999, "epsilon": 1})
    assert "epochs" in caught.value.detail or "epochs" in caught.value.errors
    with pytest.raises(NotFound):
        client.job(424242)
