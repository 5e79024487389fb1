"""A typed Python client and a command-line tool for the privacy-preserving data marketplace's
REST API. See docs/client.md.

    from marketplace_client import MarketplaceClient
    client = MarketplaceClient("http://localhost:8000", token="...")
"""

from __future__ import annotations

from marketplace_client.client import MarketplaceClient, PublishResult, params_hash, result_hash
from marketplace_client.errors import (
    APIError,
    AuthenticationError,
    Conflict,
    InvalidRequest,
    MarketplaceError,
    NotFound,
    OperationFailed,
    PermissionDenied,
    RateLimited,
    RequestTooLarge,
    ServerError,
    ServiceUnavailable,
    TransportError,
    VerificationFailed,
    WaitTimeout,
)
from marketplace_client.types import (
    Algorithm,
    Artifact,
    Budget,
    ChainListing,
    Check,
    Dataset,
    DatasetPage,
    Job,
    JobProgress,
    JobResult,
    Order,
    Quote,
    Receipt,
    Schema,
    SchemaInfo,
    Verification,
)
from marketplace_client.version import __version__

__all__ = [
    "APIError",
    "Algorithm",
    "Artifact",
    "AuthenticationError",
    "Budget",
    "ChainListing",
    "Check",
    "Conflict",
    "Dataset",
    "DatasetPage",
    "InvalidRequest",
    "Job",
    "JobProgress",
    "JobResult",
    "MarketplaceClient",
    "MarketplaceError",
    "NotFound",
    "OperationFailed",
    "Order",
    "PermissionDenied",
    "PublishResult",
    "Quote",
    "RateLimited",
    "Receipt",
    "RequestTooLarge",
    "Schema",
    "SchemaInfo",
    "ServerError",
    "ServiceUnavailable",
    "TransportError",
    "Verification",
    "VerificationFailed",
    "WaitTimeout",
    "__version__",
    "params_hash",
    "result_hash",
]
