"""A typed Python client and a command-line tool for the privacy-preserving data marketplace's
REST API. See docs/client.md.

    from marketplace_client import MarketplaceClient
    client = MarketplaceClient("http://localhost:8000", token="...")
"""

from __future__ import annotations

__version__ = "0.1.0"

from marketplace_client.client import MarketplaceClient, PublishResult, params_hash, result_hash  # noqa: E402
from marketplace_client.errors import (  # noqa: E402
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
from marketplace_client.types import (  # noqa: E402
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
