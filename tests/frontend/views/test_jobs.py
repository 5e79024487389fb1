"""The compute-job pages: the job form on the dataset page, the live job page, the results with
their charts and downloads, the receipt check and "My jobs". Jobs are rows made here directly (no
chain, no runner); the form's parameter errors come from the runner's catalogue before any chain
call."""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.test import Client
from django.urls import reverse

from chain.models import ChainListing, Order
from compute_to_data.models import ComputeJob, JobArtifact, JobLogEntry, PrivacyBudget
from compute_to_data.runner.params import ALGORITHMS
from compute_to_data.services import jobs as job_services
from compute_to_data.services.receipts import result_hash_of
from marketplace.models import Dataset
from tests.factories import UserFactory, make_dataset

pytestmark = pytest.mark.django_db

CURVE = [
    {"epoch": 1, "step": 20, "epsilon": 0.21, "loss": 0.6931, "accuracy": 0.55},
    {"epoch": 2, "step": 40, "epsilon": 0.33, "loss": 0.5412, "accuracy": 0.71},
    {"epoch": 3, "step": 60, "epsilon": 0.42, "loss": 0.4877, "accuracy": 0.78},
]
RESULTS = {
    "epsilon_spent": 0.4213,
    "delta": 1e-05,
    "accountant": "rdp",
    "noise_multiplier": 1.37,
    "sample_rate": 0.05,
    "steps": 60,
    "metrics": [
        {"name": "dp_accuracy", "value": 0.78, "source": "dp", "description": "Accuracy on the private rows (noisy)."},
        {"name": "eval_rows", "value": 25, "source": "public", "description": "Rows of the evaluation file."},
    ],
    "curve": CURVE,
    "epsilon_curve": [[0, 0.0], [20, 0.21], [40, 0.33], [60, 0.4213]],
}
MODEL_BYTES = b"\x08\x07ONNX-model-bytes\x00\x01" * 20
CARD_BYTES = b'{"title": "DP logistic regression"}'


@pytest.fixture
def dataset(provider, staff) -> Dataset:
    return make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)


@pytest.fixture
def on_chain(dataset, settings) -> Dataset:
    """The dataset published on a (configured, never called) chain: what the job form needs."""
    settings.CHAIN_RPC_URL = "http://127.0.0.1:9"  # nothing listens: these pages must not call it
    ChainListing.objects.create(
        dataset=dataset,
        chain_id=31337,
        state=ChainListing.State.PUBLISHED,
        owner_address="0x" + "1" * 40,
        nft_address="0x" + "2" * 40,
        datatoken_address="0x" + "3" * 40,
        payment_token="0x" + "4" * 40,
        price_units=5_000_000,
        epsilon_cap_units=10_000_000,
        epsilon_per_job_units=1_000_000,
        delta_units=10**13,
        metadata_hash="0x" + "0" * 64,
        operator_ordering_disabled=False,  # listed: the operator opened it
    )
    return dataset


def client_as(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def html(response) -> str:
    return response.content.decode()


def seen(response) -> str:
    """The page's text as a reader sees it: tags dropped, whitespace collapsed."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", html(response), flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip()


def field_block(body: str, name: str) -> str:
    """The markup of one parameter's field group on the job form."""
    start = body.rindex("<div", 0, body.index(f'data-param="{name}"'))
    end = body.find("data-param=", body.index(f'data-param="{name}"') + 1)
    return body[start : body.rindex("<div", 0, end) if end != -1 else len(body)]


def target_column(dataset: Dataset) -> str:
    columns = dataset.declared_schema["columns"]
    return next(c["name"] for c in columns if c["type"] in ("categorical", "boolean"))


def make_job(dataset, buyer, status, *, algorithm="dp-logistic-regression", **fields) -> ComputeJob:
    given = {"epsilon": 0.5} if algorithm == "dp-statistics" else {"target": target_column(dataset), "epsilon": 0.5}
    parameters = job_services.parameters_for(dataset=dataset, algorithm=algorithm, parameters=given)
    return ComputeJob.objects.create(
        buyer=buyer,
        dataset=dataset,
        algorithm=algorithm,
        parameters=parameters,
        params_hash=job_services.params_hash(algorithm, parameters),
        epsilon=Decimal("0.5"),
        delta=parameters["delta"],
        status=status,
        dataset_hash=dataset.commitment,
        **fields,
    )


def store_artifacts(job: ComputeJob, files: dict[str, bytes]) -> None:
    pairs = []
    for name, data in files.items():
        stored = storages["results"].save(f"job-{job.pk}/{name}", ContentFile(data, name=name))
        digest = hashlib.sha256(data).hexdigest()
        JobArtifact.objects.create(
            job=job,
            name=name,
            kind="file",
            description=f"The {name}.",
            size=len(data),
            sha256=digest,
            storage_name=stored,
        )
        pairs.append((name, digest))
    ComputeJob.objects.filter(pk=job.pk).update(result_hash=result_hash_of(pairs))
    job.refresh_from_db()


@pytest.fixture
def finished(dataset, buyer) -> ComputeJob:
    job = make_job(
        dataset,
        buyer,
        ComputeJob.Status.FINISHED,
        results=RESULTS,
        epsilon_spent=Decimal("0.4213"),
        budget_state=ComputeJob.Budget.CHARGED,
        progress={"phase": "finished", "percent": 100},
    )
    store_artifacts(job, {"model.onnx": MODEL_BYTES, "model_card.json": CARD_BYTES})
    return job


# --- the job page ------------------------------------------------------------------------------


def test_running_job_page_shows_live_progress_and_polls_the_api(dataset, buyer):
    job = make_job(
        dataset,
        buyer,
        ComputeJob.Status.RUNNING,
        budget_state=ComputeJob.Budget.RESERVED,
        progress={
            "phase": "training",
            "percent": 47,
            "epoch": 2,
            "epochs": 5,
            "step": 40,
            "steps": 100,
            "epsilon": 0.31234,
        },
    )
    JobLogEntry.objects.create(job=job, source="runner", message="Epoch 2 of 5 done.")
    response = client_as(buyer).get(reverse("frontend:job", args=[job.pk]))
    assert response.status_code == 200
    body, text = html(response), seen(response)
    assert 'role="progressbar"' in body and 'aria-valuenow="47"' in body
    assert "Status: Running" in text and "Training · 47 % done" in text
    assert "Epoch 2 of 5" in text and "Step 40 of 100" in text and "Epsilon so far ε 0.3123 of 0.5" in text
    assert "Epoch 2 of 5 done." in text  # the log
    api = reverse("compute-api:job", args=[job.pk])
    assert f'data-job-api="{api}"' in body and 'id="job-labels"' in body and "frontend/jobs.js" in body
    # What the page polls answers the buyer's session with the same numbers.
    live = client_as(buyer).get(api).json()
    assert live["status"] == "running" and live["progress"]["epoch"] == 2 and live["progress"]["percent"] == 47


@pytest.mark.parametrize("status", [s.value for s in ComputeJob.Status])
def test_cancel_button_is_for_the_buyer_in_cancellable_states_only(dataset, buyer, provider, status):
    job = make_job(dataset, buyer, status, reason="Stopped." if status in ComputeJob.TERMINAL else "")
    buyer_page = html(client_as(buyer).get(reverse("frontend:job", args=[job.pk])))
    provider_page = client_as(provider).get(reverse("frontend:job", args=[job.pk]))
    assert provider_page.status_code == 200 and "Cancel job" not in html(provider_page)
    assert ("Cancel job" in buyer_page) == (status in ComputeJob.CANCELLABLE)
    assert ("data-job-api" in buyer_page) == (status not in ComputeJob.TERMINAL)


def test_buyer_cancels_a_queued_job_and_the_provider_cannot(dataset, buyer, provider):
    job = make_job(dataset, buyer, ComputeJob.Status.QUEUED)
    url = reverse("frontend:job-cancel", args=[job.pk])
    refused = client_as(provider).post(url, follow=True)
    assert "Only the buyer can cancel this job." in seen(refused)
    job.refresh_from_db()
    assert job.status == ComputeJob.Status.QUEUED

    # The buyer is asked first (GET, or a POST without the confirmation, changes nothing).
    assert "Yes, cancel the job" in seen(client_as(buyer).get(url))
    assert "Yes, cancel the job" in seen(client_as(buyer).post(url))
    job.refresh_from_db()
    assert job.status == ComputeJob.Status.QUEUED
    response = client_as(buyer).post(url, {"confirm": "yes"}, follow=True)
    job.refresh_from_db()
    assert job.status == ComputeJob.Status.CANCELLED
    text = seen(response)
    assert "Job cancelled before it started" in text and "Cancelled by the buyer before it started." in text
    assert "Cancel job" not in text and "data-job-api" not in html(response)
    assert "cannot be cancelled" in seen(client_as(buyer).get(url, follow=True))


def test_failed_job_shows_its_reason_and_no_progress(dataset, buyer):
    job = make_job(
        dataset,
        buyer,
        ComputeJob.Status.FAILED,
        reason="The sandbox ran out of memory (4096 MB).",
        limit_hit="memory",
        budget_state=ComputeJob.Budget.CHARGED,
        epsilon_spent=Decimal("0.5"),
    )
    response = client_as(buyer).get(reverse("frontend:job", args=[job.pk]))
    text = seen(response)
    assert "The job failed. The sandbox ran out of memory (4096 MB)." in text and "Limit reached: memory." in text
    assert 'role="progressbar"' not in html(response) and "See the results" not in text
    assert "Epsilon spent ε = 0.5" in text and "Budget Charged" in text


def test_job_page_is_for_buyer_provider_and_staff_only(dataset, buyer, provider, staff):
    job = make_job(dataset, buyer, ComputeJob.Status.QUEUED)
    url = reverse("frontend:job", args=[job.pk])
    assert client_as(staff).get(url).status_code == 200
    assert "run by buyer" in seen(client_as(provider).get(url))
    assert client_as(UserFactory(username="stranger")).get(url).status_code == 404
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and anonymous.url.startswith(reverse("frontend:login"))


# --- results, downloads, receipt -----------------------------------------------------------------


def test_result_page_is_the_buyers_with_charts_tables_and_sources(finished, buyer, provider):
    url = reverse("frontend:job-result", args=[finished.pk])
    assert client_as(provider).get(url).status_code == 403
    assert client_as(UserFactory(username="stranger")).get(url).status_code == 404

    response = client_as(buyer).get(url)
    assert response.status_code == 200
    body, text = html(response), seen(response)
    # Chart.js from our own static files, never a CDN; every chart has its table.
    assert '<script src="/static/vendor/chartjs/chart.umd.min.js" defer>' in body
    assert not re.search(r'<script[^>]+src="(https?:)?//', body)
    assert '<canvas id="loss-chart"' in body and '<canvas id="epsilon-chart"' in body
    assert json.loads(re.search(r'id="loss-data"[^>]*>(.*?)</script>', body).group(1))["loss"] == [
        0.6931,
        0.5412,
        0.4877,
    ]
    assert "Data table: loss per epoch" in text and "2 40 0.33 0.5412 0.71" in text
    assert "Data table: epsilon over the steps" in text and "60 0.4213" in text
    # Each metric says where its number comes from.
    assert "dp_accuracy 0.78 DP-protected and accounted" in text
    assert "eval_rows 25 Computed from public inputs" in text
    # Accounting.
    assert "Epsilon spent ε 0.4213 of ε 0.5 requested" in text
    assert "Noise multiplier 1.37" in text and "Sample rate 0.05" in text and "Accountant RDP" in text
    assert "Steps 60" in text and "Delta δ = 0.00001" in text
    # Downloads with size and SHA-256, and the receipt.
    assert reverse("frontend:job-artifact", args=[finished.pk, "model.onnx"]) in body
    assert hashlib.sha256(MODEL_BYTES).hexdigest() in body and "400 bytes" in text
    assert finished.result_hash in body and reverse("frontend:job-verify", args=[finished.pk]) in body


def test_result_page_of_an_unfinished_job_goes_back_to_the_job(dataset, buyer):
    job = make_job(dataset, buyer, ComputeJob.Status.RUNNING)
    response = client_as(buyer).get(reverse("frontend:job-result", args=[job.pk]))
    assert response.status_code == 302 and response.url == reverse("frontend:job", args=[job.pk])


def test_finished_job_page_links_results_for_the_buyer_only(finished, buyer, provider):
    url = reverse("frontend:job", args=[finished.pk])
    assert "See the results" in seen(client_as(buyer).get(url))
    provider_text = seen(client_as(provider).get(url))
    assert "See the results" not in provider_text and "The results are the buyer’s alone" in provider_text
    assert finished.result_hash in provider_text


def test_downloads_are_served_to_the_buyer_only_with_the_right_bytes(finished, buyer, provider, staff):
    url = reverse("frontend:job-artifact", args=[finished.pk, "model.onnx"])
    response = client_as(buyer).get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == MODEL_BYTES
    assert (
        response["Content-Disposition"].startswith("attachment")
        and f"job-{finished.pk}-model.onnx" in (response["Content-Disposition"])
    )
    assert response["X-Content-SHA256"] == hashlib.sha256(MODEL_BYTES).hexdigest()
    assert client_as(provider).get(url).status_code == 403
    assert client_as(staff).get(url).status_code == 403
    assert client_as(UserFactory(username="stranger")).get(url).status_code == 404
    missing = reverse("frontend:job-artifact", args=[finished.pk, "raw.csv"])
    assert client_as(buyer).get(missing).status_code == 404


def test_statistics_job_shows_its_released_statistics(dataset, buyer, provider):
    document = {
        "columns": [
            {
                "name": "age",
                "type": "integer",
                "bounds": {"min": 20, "max": 49, "source": "public"},
                "count": {"value": 31, "source": "dp", "noise_std": 2.5},
                "mean": {"value": 34.61234, "source": "dp"},
                "histogram": {"edges": [20, 30, 40, 49], "counts": [9, 11, 10], "source": "dp"},
                "quantiles": {"levels": [0.25, 0.5], "values": [27.5, 34.25], "source": "dp"},
            },
            {"name": "group", "type": "categorical", "histogram": {"categories": ["a", "b"], "counts": [14, 16]}},
            {"name": "note", "type": "text", "skipped": "none of the requested statistics applies"},
        ],
        "notes": ["Values marked 'dp' are noisy."],
    }
    job = make_job(
        dataset,
        buyer,
        ComputeJob.Status.FINISHED,
        algorithm="dp-statistics",
        results={**RESULTS, "curve": [], "metrics": [], "epsilon_curve": [[0, 0.0], [5, 0.49]], "steps": 5},
    )
    store_artifacts(job, {"statistics.json": json.dumps(document).encode(), "statistics.md": b"# DP statistics"})
    response = client_as(buyer).get(reverse("frontend:job-result", args=[job.pk]))
    assert response.status_code == 200
    body, text = html(response), seen(response)
    assert 'id="loss-chart"' not in body  # no training, no loss curve
    assert "Count 31 2.5 DP-protected" in text and "Mean 34.6123" in text
    assert "Quantile 0.25 27.5" in text and "Declared bounds 20 … 49 — Public" in text
    assert 'id="histogram-0"' in body and "[20, 30) 9" in text and "[40, 49] 10" in text
    assert 'id="histogram-1"' in body and "a 14" in text and "b 16" in text
    assert "Skipped: none of the requested statistics applies." in text
    assert "Noisy queries 5" in text


def test_receipt_check_lists_each_check_and_catches_a_changed_file(finished, buyer, provider):
    url = reverse("frontend:job-verify", args=[finished.pk])
    response = client_as(provider).get(url)  # the provider may check the receipt too
    assert response.status_code == 200
    text = seen(response)
    assert "Dataset : matches" in text and "Parameters : matches" in text and "Results : matches" in text
    assert "Chain : pending" in text and "No receipt on chain yet" in text
    assert "does not match" not in text

    artifact = finished.artifacts.get(name="model.onnx")
    with storages["results"].open(artifact.storage_name, "wb") as fh:
        fh.write(b"tampered")
    text = seen(client_as(buyer).get(url))
    assert "Results : does not match" in text and "changed: model.onnx" in text and "Does not match" in text


# --- the job form on the dataset page ------------------------------------------------------------


def test_job_form_renders_the_registry_parameters_with_bounds(on_chain, buyer):
    page = client_as(buyer)
    response = page.get(reverse("frontend:dataset", args=[on_chain.pk]))
    assert response.status_code == 200
    body, text = html(response), seen(response)
    assert "Run a compute job" in text and "Get a quote" in text and "Pay and run" in text
    for spec in ALGORITHMS.values():
        assert f'value="{spec.name}"' in body and spec.title in text and spec.summary in text
    assert re.search(r'<input type="number" name="epochs" value="5"[^>]*min="1"[^>]*max="50"', body)
    assert re.search(r'<input type="number" name="batch_size" value="256"[^>]*min="8"[^>]*max="4096"', body)
    assert re.search(r'name="epsilon" value="1"[^>]*max="1"[^>]*required', body)
    assert 'name="delta" value="0.00001"' in body
    assert f'<option value="{target_column(on_chain)}">' in field_block(body, "target")
    assert 'name="features"' in body and 'type="checkbox" name="private_metrics"' in body
    assert "On this dataset: at most ε 1 per job." in text
    # Every input has a label.
    for input_id in re.findall(r'<(?:input(?![^>]*type="hidden")|select)[^>]+id="(job-[\w-]+)"', body):
        assert f'for="{input_id}"' in body, input_id
    # The budget panel.
    assert "Left: ε 10 of 10" in text and "Spent: ε 0" in text

    stats = html(page.get(reverse("frontend:dataset", args=[on_chain.pk]), {"algorithm": "dp-statistics"}))
    assert (
        'name="bins"' in stats and 'name="statistics"' in stats and 'name="quantiles" value="0.25, 0.5, 0.75"' in stats
    )
    assert 'name="epochs"' not in stats


def test_budget_left_caps_the_epsilon_input(on_chain, buyer):
    PrivacyBudget.objects.create(dataset=on_chain, epsilon_reserved=Decimal("9.25"), epsilon_spent=Decimal("0.5"))
    response = client_as(buyer).get(reverse("frontend:dataset", args=[on_chain.pk]))
    body, text = html(response), seen(response)
    assert re.search(r'name="epsilon" value="0.25"[^>]*max="0.25"', body)
    assert "Left: ε 0.25 of 10" in text and "Reserved: ε 9.25" in text


@pytest.mark.parametrize("intent", ["quote", "pay"])
def test_a_parameter_error_shows_next_to_its_field_before_any_chain_call(on_chain, buyer, intent):
    data = {
        "algorithm": "dp-logistic-regression",
        "target": target_column(on_chain),
        "epochs": "500",
        "batch_size": "64",
        "learning_rate": "0.5",
        "max_grad_norm": "1",
        "epsilon": "0.5",
        "delta": "0.00001",
        "accountant": "rdp",
        "intent": intent,
    }
    response = client_as(buyer).post(reverse("frontend:dataset-job", args=[on_chain.pk]), data)
    assert response.status_code == 400
    body = html(response)
    epochs = field_block(body, "epochs")
    assert "field-invalid" in epochs[:80] and "&#x27;epochs&#x27; must be at most 50." in epochs
    assert 'aria-invalid="true"' in epochs and 'value="500"' in epochs
    assert "must be at most 50" not in field_block(body, "batch_size")
    assert "The chain node does not answer" not in body
    assert not ComputeJob.objects.exists() and not Order.objects.exists()


def test_unparseable_input_and_epsilon_precision_are_refused_by_the_form(on_chain, buyer):
    url = reverse("frontend:dataset-job", args=[on_chain.pk])
    data = {"algorithm": "dp-mlp-classifier", "target": target_column(on_chain), "epochs": "five"}
    data |= {"hidden_sizes": "64, wide", "epsilon": "0.12345", "delta": "0.00001", "accountant": "rdp"}
    body = html(client_as(buyer).post(url, {**data, "intent": "quote"}))
    assert "Enter a whole number." in field_block(body, "epochs")
    assert "Enter whole numbers separated by commas" in field_block(body, "hidden_sizes")
    assert "Epsilon can have at most 4 decimal places." in field_block(body, "epsilon")
    unknown = client_as(buyer).post(url, {**data, "algorithm": "raw-rows"})
    assert unknown.status_code == 400 and "Choose one of the algorithms." in seen(unknown)


def test_a_quote_needs_the_chain_and_says_so_with_503(on_chain, buyer):
    data = {"algorithm": "dp-statistics", "bins": "10", "statistics": ["count", "mean"], "quantiles": "0.5"}
    data |= {"epsilon": "0.5", "delta": "0.00001", "accountant": "rdp", "intent": "quote"}
    response = client_as(buyer).post(reverse("frontend:dataset-job", args=[on_chain.pk]), data)
    assert response.status_code == 503 and "The chain node does not answer" in seen(response)
    assert "Could not run the job." in seen(response)


def test_the_job_form_keeps_the_order_refusals(on_chain, provider, buyer, staff):
    url = reverse("frontend:dataset-job", args=[on_chain.pk])
    owner_page = client_as(provider)
    assert "Get a quote" not in html(owner_page.get(reverse("frontend:dataset", args=[on_chain.pk])))
    refused = owner_page.post(url, {"algorithm": "dp-statistics", "intent": "pay"}, follow=True)
    assert "You cannot order compute on your own dataset." in seen(refused)

    unpublished = make_dataset(owner=provider, title="Not on chain", status=Dataset.Status.LISTED, moderator=staff)
    response = client_as(buyer).post(reverse("frontend:dataset-job", args=[unpublished.pk]), {}, follow=True)
    assert "This dataset is not published on chain yet." in seen(response)
    assert not ComputeJob.objects.exists()


def test_dataset_page_lists_jobs_to_the_provider_and_own_jobs_to_a_buyer(dataset, provider, buyer):
    other = UserFactory(username="other-buyer")
    mine = make_job(dataset, buyer, ComputeJob.Status.FINISHED, settlement=ComputeJob.Settlement.RECEIPT)
    theirs = make_job(dataset, other, ComputeJob.Status.RUNNING, budget_state=ComputeJob.Budget.RESERVED)
    url = reverse("frontend:dataset", args=[dataset.pk])

    text = seen(client_as(provider).get(url))
    assert "Jobs run on this dataset" in text
    assert f"Job {mine.pk} buyer DP logistic regression Finished" in text and "Recorded on chain" in text
    assert f"Job {theirs.pk} other-buyer" in text and "ε 0.5 (reserved)" in text

    text = seen(client_as(buyer).get(url))
    assert "Your jobs on this dataset" in text and f"Job {mine.pk}" in text and f"Job {theirs.pk}" not in text
    assert "Jobs run on this dataset" not in seen(Client().get(url))


# --- my jobs ----------------------------------------------------------------------------------------


def test_my_jobs_lists_my_jobs_with_progress_and_the_provider_tab(dataset, buyer, provider):
    job = make_job(dataset, buyer, ComputeJob.Status.RUNNING, progress={"phase": "training", "percent": 63})
    page = client_as(buyer)
    response = page.get(reverse("frontend:my-jobs"))
    text = seen(response)
    assert f"Job {job.pk} {dataset.title} DP logistic regression Running 63%" in text
    assert 'aria-current="page">Jobs</a>' in html(response)
    assert reverse("frontend:my-jobs") in html(page.get(reverse("frontend:profile")))
    assert "No jobs have run on your datasets yet." in seen(page.get(reverse("frontend:my-jobs"), {"role": "provider"}))

    provider_text = seen(client_as(provider).get(reverse("frontend:my-jobs"), {"role": "provider"}))
    assert f"Job {job.pk}" in provider_text and "buyer" in provider_text
    assert "You have not run any compute jobs yet." in seen(client_as(provider).get(reverse("frontend:my-jobs")))
