"""The whole thing through the real parts: a buyer registers a webhook over the API, pays for a job
on a real anvil, the trusted runner runs in a real bubblewrap sandbox (Celery eager), and a real
HTTP receiver gets every status change, signed, while the buyer gets the e-mail."""

from __future__ import annotations

import pytest
from django.core import mail

from integrations.signing import signature_verify
from tests.chain.conftest import _session_chain, accounts, anvil, chain, deployment, on_chain, people, w3  # noqa: F401
from tests.compute_to_data.conftest import compute_settings  # noqa: F401
from tests.compute_to_data.support import job_submit, listed_on_chain

pytestmark = [pytest.mark.chain, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_paid_job_is_followed_by_a_signed_webhook_and_an_e_mail(api, people, on_chain, compute_settings, receiver):
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    api.force_authenticate(buyer)
    hook = api.post(
        "/api/v1/webhooks/", {"url": receiver.url, "events": ["job.status_changed", "job.finished"]}, format="json"
    ).json()
    mail.outbox.clear()

    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.3})
    assert job["status"] == "finished", job["reason"]

    requests = receiver.wait_for(7)
    for request in requests:
        signature_verify(
            hook["secret"],
            request.body,
            timestamp=request.headers["x-marketplace-timestamp"],
            signature=request.headers["x-marketplace-signature"],
        )
    changes = [r.json for r in requests if r.json["type"] == "job.status_changed"]
    assert [e["data"]["status"] for e in changes] == [
        "paid",
        "queued",
        "provisioning",
        "running",
        "publishing",
        "finished",
    ]
    [finished] = [r.json for r in requests if r.json["type"] == "job.finished"]
    assert finished["data"]["job"]["id"] == job["id"] and finished["data"]["role"] == "buyer"
    assert finished["data"]["job"]["epsilon_spent"] == job["epsilon_spent"]

    log = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries/").json()
    assert log["count"] == 7 and {d["status"] for d in log["results"]} == {"succeeded"}
    assert any(m.to == [buyer.email] and "finished" in m.subject for m in mail.outbox)
