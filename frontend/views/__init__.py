"""Server-rendered pages, one module per journey: ``accounts``, ``catalogue`` (and the dataset
page), ``publish`` (the provider's side of a dataset), ``jobs``, ``orders``, ``wallet``,
``moderation``, ``dashboard``, ``ledger``, ``integrations`` (webhooks) and ``errors`` (404/500).
``common`` holds what they share; what pages show is computed in ``frontend/presenters.py``.
Each view parses input, calls one selector or service, and renders; ``DomainError``s from the
services come back to the user with their ``detail``. Modules import each other's public names
only."""
