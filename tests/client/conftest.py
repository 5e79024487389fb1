"""The live stack of the journey tests (live server, real Celery worker, test anvil, funded
provider, buyer and staff), for the integrator client's tests."""

from tests.journeys.conftest import (  # noqa: F401
    _session_chain,
    accounts,
    anvil,
    chain,
    compute_settings,
    compute_worker,
    deployment,
    on_chain,
    people,
    stack,
    w3,
)
