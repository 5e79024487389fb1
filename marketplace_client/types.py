"""Typed views of the API's JSON answers.

Each class has ``from_json(data)`` and keeps the whole answer in ``raw`` so fields added to the
API later are never lost. Amounts (prices, epsilons) are :class:`~decimal.Decimal`, timestamps
timezone-aware :class:`~datetime.datetime`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NotRequired, TypedDict

__all__ = [
    "Algorithm",
    "AlgorithmParameter",
    "Artifact",
    "Budget",
    "BudgetJob",
    "ChainListing",
    "Check",
    "Dataset",
    "DatasetPage",
    "DownloadedArtifact",
    "Job",
    "JobPage",
    "JobProgress",
    "JobReceipt",
    "JobResult",
    "Order",
    "Quote",
    "Receipt",
    "Schema",
    "SchemaColumn",
    "SchemaInfo",
    "Verification",
    "TERMINAL_JOB_STATUSES",
]

JSON = dict[str, Any]

# A job in one of these never changes again.
TERMINAL_JOB_STATUSES = frozenset({"finished", "failed", "cancelled", "rejected"})


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _dec0(value: Any) -> Decimal:
    return _dec(value) or Decimal(0)


def _dt(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str:
    return "" if value is None else str(value)


# --- datasets ---------------------------------------------------------------------------------


class SchemaColumn(TypedDict):
    """One declared column. ``type`` is integer, float, boolean, categorical, datetime or text."""

    name: str
    type: str
    nullable: NotRequired[bool]
    description: NotRequired[str]
    min: NotRequired[float | int | str]
    max: NotRequired[float | int | str]
    categories: NotRequired[list[str]]


@dataclass(frozen=True)
class Schema:
    """A (declared or proposed) schema: public column types, bounds and categories."""

    columns: list[SchemaColumn]
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Schema | None:
        if not data:
            return None
        columns: list[SchemaColumn] = [c for c in data.get("columns", []) if isinstance(c, dict)]  # type: ignore[misc]
        return cls(columns=columns, raw=dict(data))

    def to_json(self) -> JSON:
        return {**self.raw, "columns": [dict(c) for c in self.columns]}

    @property
    def column_names(self) -> list[str]:
        return [c["name"] for c in self.columns]


@dataclass(frozen=True)
class SchemaInfo:
    """``GET datasets/{id}/schema/``: the declared schema and, for the owner, the proposal."""

    declared: Schema | None
    proposed: Schema | None
    confirmed_at: datetime | None
    public_row_count: int | None = None  # public, declared by the owner
    holdout_fraction: float | None = None
    suggested_public_row_count: int | None = None  # owner only: the row count to 2 significant figures
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SchemaInfo:
        fraction = data.get("holdout_fraction")
        return cls(
            declared=Schema.from_json(data.get("declared")),
            proposed=Schema.from_json(data.get("proposed")),
            confirmed_at=_dt(data.get("confirmed_at")),
            public_row_count=_int(data.get("public_row_count")),
            holdout_fraction=float(fraction) if isinstance(fraction, int | float) else None,
            suggested_public_row_count=_int(data.get("suggested_public_row_count")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Dataset:
    """A dataset as the API shows it to you. Owner-only fields are None for others (and in
    catalogue rows, which also leave out the schema)."""

    id: int
    title: str
    description: str
    tags: list[str]
    licence: str
    price: Decimal
    price_token: str
    epsilon_total: Decimal
    epsilon_per_job: Decimal
    delta: float
    status: str
    owner: str
    file_format: str
    schema_confirmed: bool
    has_uploaded_mock: bool
    created_at: datetime | None
    listed_at: datetime | None
    updated_at: datetime | None
    declared_schema: Schema | None = None
    # Cumulative delta cap over all jobs (delta composes too).
    delta_total: float | None = None
    # The file's public identity: "0x" + SHA-256(salt || file), the salt known to the owner only.
    commitment: str = ""
    size_bucket: str = ""  # e.g. "1–10 MB": the exact size is private
    public_row_count: int | None = None  # declared by the owner
    holdout_fraction: float | None = None
    # Owner (and staff) only:
    original_filename: str | None = None
    file_size: int | None = None
    file_sha256: str | None = None
    commitment_salt: str | None = None
    validation: str | None = None
    validation_detail: str | None = None
    validation_progress: int | None = None
    row_count: int | None = None
    schema_report: JSON | None = None
    proposed_schema: Schema | None = None
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Dataset:
        return cls(
            id=int(data["id"]),
            title=_str(data.get("title")),
            description=_str(data.get("description")),
            tags=[str(t) for t in data.get("tags") or []],
            licence=_str(data.get("licence")),
            price=_dec0(data.get("price")),
            price_token=_str(data.get("price_token")),
            epsilon_total=_dec0(data.get("epsilon_total")),
            epsilon_per_job=_dec0(data.get("epsilon_per_job")),
            delta=_float(data.get("delta")) or 0.0,
            status=_str(data.get("status")),
            owner=_str(data.get("owner")),
            file_format=_str(data.get("file_format")),
            schema_confirmed=bool(data.get("schema_confirmed")),
            has_uploaded_mock=bool(data.get("has_uploaded_mock")),
            created_at=_dt(data.get("created_at")),
            listed_at=_dt(data.get("listed_at")),
            updated_at=_dt(data.get("updated_at")),
            declared_schema=Schema.from_json(data.get("declared_schema")),
            delta_total=_float(data.get("delta_total")),
            commitment=_str(data.get("commitment")),
            size_bucket=_str(data.get("size_bucket")),
            public_row_count=_int(data.get("public_row_count")),
            holdout_fraction=_float(data.get("holdout_fraction")),
            original_filename=data.get("original_filename"),
            file_size=_int(data.get("file_size")),
            file_sha256=data.get("file_sha256"),
            commitment_salt=data.get("commitment_salt"),
            validation=data.get("validation"),
            validation_detail=data.get("validation_detail"),
            validation_progress=_int(data.get("validation_progress")),
            row_count=_int(data.get("row_count")),
            schema_report=data.get("schema_report"),
            proposed_schema=Schema.from_json(data.get("proposed_schema")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class DatasetPage:
    """One page of the catalogue (or of ``datasets/mine/``)."""

    count: int
    page: int
    page_size: int
    next: str | None
    previous: str | None
    results: list[Dataset]

    @property
    def pages(self) -> int:
        return max(1, -(-self.count // self.page_size)) if self.page_size else 1


# --- chain ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainListing:
    """``GET datasets/{id}/chain/``: the dataset's data NFT and datatoken. ``state`` is
    publishing, published or failed (``error`` says why)."""

    dataset: int
    state: str
    chain_id: int | None
    owner_address: str
    nft_address: str
    datatoken_address: str
    payment_token: str
    price: Decimal
    epsilon_cap: Decimal
    epsilon_per_job_cap: Decimal
    epsilon_ordered: Decimal
    epsilon_left: Decimal
    delta_cap: float
    publish_tx_hash: str
    error: str
    published_at: datetime | None
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChainListing:
        tx = data.get("publish_tx") or {}
        return cls(
            dataset=int(data["dataset"]),
            state=_str(data.get("state")),
            chain_id=_int(data.get("chain_id")),
            owner_address=_str(data.get("owner_address")),
            nft_address=_str(data.get("nft_address")),
            datatoken_address=_str(data.get("datatoken_address")),
            payment_token=_str(data.get("payment_token")),
            price=_dec0(data.get("price")),
            epsilon_cap=_dec0(data.get("epsilon_cap")),
            epsilon_per_job_cap=_dec0(data.get("epsilon_per_job_cap")),
            epsilon_ordered=_dec0(data.get("epsilon_ordered")),
            epsilon_left=_dec0(data.get("epsilon_left")),
            delta_cap=_float(data.get("delta_cap")) or 0.0,
            publish_tx_hash=_str(data.get("publish_tx_hash") or (tx.get("tx_hash") if isinstance(tx, dict) else "")),
            error=_str(data.get("error")),
            published_at=_dt(data.get("published_at")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Order:
    """An order paid on chain (``GET orders/{id}/``)."""

    id: int
    dataset: int
    dataset_title: str
    datatoken: str
    buyer: str
    source: str
    status: str
    consumer_address: str
    epsilon: Decimal
    delta: float
    algorithm_hash: str
    amount: Decimal
    tx_hash: str
    chain_order_id: int | None
    block_number: int | None
    error: str
    epsilon_spent: Decimal | None
    # Contracts v2: the order ticket's expiry, and the on-chain deadline (unix seconds) after which
    # the marketplace can no longer settle and the buyer may reclaim.
    ticket_expires_at: datetime | None
    deadline: int | None
    receipt: JSON | None
    created_at: datetime | None
    confirmed_at: datetime | None
    settled_at: datetime | None
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Order:
        return cls(
            id=int(data["id"]),
            dataset=int(data.get("dataset") or 0),
            dataset_title=_str(data.get("dataset_title")),
            datatoken=_str(data.get("datatoken")),
            buyer=_str(data.get("buyer")),
            source=_str(data.get("source")),
            status=_str(data.get("status")),
            consumer_address=_str(data.get("consumer_address")),
            epsilon=_dec0(data.get("epsilon")),
            delta=_float(data.get("delta")) or 0.0,
            algorithm_hash=_str(data.get("algorithm_hash")),
            amount=_dec0(data.get("amount")),
            tx_hash=_str(data.get("tx_hash")),
            chain_order_id=_int(data.get("chain_order_id")),
            block_number=_int(data.get("block_number")),
            error=_str(data.get("error")),
            epsilon_spent=_dec(data.get("epsilon_spent")),
            ticket_expires_at=_dt(data.get("ticket_expires_at")),
            deadline=_int(data.get("deadline")),
            receipt=data.get("receipt") if isinstance(data.get("receipt"), dict) else None,
            created_at=_dt(data.get("created_at")),
            confirmed_at=_dt(data.get("confirmed_at")),
            settled_at=_dt(data.get("settled_at")),
            raw=dict(data),
        )


# --- compute ----------------------------------------------------------------------------------


class AlgorithmParameter(TypedDict):
    """One parameter of an algorithm, with its bounds and default."""

    name: str
    type: str
    default: NotRequired[Any]
    required: NotRequired[bool]
    min: NotRequired[float | int | None]
    max: NotRequired[float | int | None]
    min_exclusive: NotRequired[bool]
    choices: NotRequired[list[Any] | None]
    help: NotRequired[str]


@dataclass(frozen=True)
class Algorithm:
    """A built-in DP algorithm (``GET algorithms/``)."""

    name: str
    title: str
    summary: str
    kind: str
    releases: list[str]
    parameters: list[AlgorithmParameter]
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Algorithm:
        return cls(
            name=_str(data.get("name")),
            title=_str(data.get("title")),
            summary=_str(data.get("summary")),
            kind=_str(data.get("kind")),
            releases=[str(r) for r in data.get("releases") or []],
            parameters=[p for p in data.get("parameters") or [] if isinstance(p, dict)],  # type: ignore[misc]
            raw=dict(data),
        )


@dataclass(frozen=True)
class BudgetJob:
    id: int
    algorithm: str
    status: str
    epsilon: Decimal
    epsilon_spent: Decimal | None
    budget_state: str


@dataclass(frozen=True)
class Budget:
    """A dataset's privacy budget (``GET datasets/{id}/budget/``)."""

    dataset: int
    epsilon_total: Decimal
    epsilon_per_job: Decimal
    delta: float
    epsilon_reserved: Decimal
    epsilon_spent: Decimal
    epsilon_left: Decimal
    jobs: list[BudgetJob]
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Budget:
        return cls(
            dataset=int(data["dataset"]),
            epsilon_total=_dec0(data.get("epsilon_total")),
            epsilon_per_job=_dec0(data.get("epsilon_per_job")),
            delta=_float(data.get("delta")) or 0.0,
            epsilon_reserved=_dec0(data.get("epsilon_reserved")),
            epsilon_spent=_dec0(data.get("epsilon_spent")),
            epsilon_left=_dec0(data.get("epsilon_left")),
            jobs=[
                BudgetJob(
                    id=int(j["id"]),
                    algorithm=_str(j.get("algorithm")),
                    status=_str(j.get("status")),
                    epsilon=_dec0(j.get("epsilon")),
                    epsilon_spent=_dec(j.get("epsilon_spent")),
                    budget_state=_str(j.get("budget_state")),
                )
                for j in data.get("jobs") or []
                if isinstance(j, dict)
            ],
            raw=dict(data),
        )


@dataclass(frozen=True)
class Quote:
    """``POST jobs/quote/``: the normalised parameters, what the order commits to, the price
    and the budget, and ``problems`` (empty when the job can go ahead)."""

    parameters: JSON
    params_hash: str
    epsilon: Decimal
    delta: float
    epsilon_left: Decimal
    epsilon_left_after: Decimal
    release: str
    problems: list[str]
    price: Decimal | None
    fee: Decimal | None
    payment_token_symbol: str
    balance: Decimal | None
    order: JSON
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Quote:
        order_raw = data.get("order")
        order: JSON = dict(order_raw) if isinstance(order_raw, dict) else {}
        return cls(
            parameters=dict(data.get("parameters") or {}),
            params_hash=_str(data.get("params_hash")),
            epsilon=_dec0(data.get("epsilon")),
            delta=_float(data.get("delta")) or 0.0,
            epsilon_left=_dec0(data.get("epsilon_left")),
            epsilon_left_after=_dec0(data.get("epsilon_left_after")),
            release=_str(data.get("release")),
            problems=[str(p) for p in data.get("problems") or []],
            price=_dec(order.get("price")),
            fee=_dec(order.get("fee")),
            payment_token_symbol=_str(order.get("payment_token_symbol")),
            balance=_dec(order.get("balance")),
            order=order,
            raw=dict(data),
        )

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class JobProgress:
    """Live progress of a job: the runner's phase, epoch and step, and epsilon spent so far."""

    phase: str | None = None
    percent: int = 0
    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    steps: int | None = None
    epsilon: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> JobProgress:
        data = data or {}
        return cls(
            phase=data.get("phase") if isinstance(data.get("phase"), str) else None,
            percent=_int(data.get("percent")) or 0,
            epoch=_int(data.get("epoch")),
            epochs=_int(data.get("epochs")),
            step=_int(data.get("step")),
            steps=_int(data.get("steps")),
            epsilon=_float(data.get("epsilon")),
        )


@dataclass(frozen=True)
class JobReceipt:
    """The receipt fields a job carries once its result hash is known."""

    dataset_hash: str
    runner_hash: str
    params_hash: str
    result_hash: str
    epsilon_spent: Decimal | None
    tx_hash: str | None
    block_number: int | None
    recorded: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> JobReceipt | None:
        if not data:
            return None
        return cls(
            dataset_hash=_str(data.get("dataset_hash")),
            runner_hash=_str(data.get("runner_hash")),
            params_hash=_str(data.get("params_hash")),
            result_hash=_str(data.get("result_hash")),
            epsilon_spent=_dec(data.get("epsilon_spent")),
            tx_hash=data.get("tx_hash") or None,
            block_number=_int(data.get("block_number")),
            recorded=bool(data.get("recorded")),
        )


@dataclass(frozen=True)
class Job:
    """A compute job (``GET jobs/{id}/``). ``status`` goes created -> paid -> queued ->
    provisioning -> running -> publishing -> finished, or ends failed, cancelled or rejected
    (``reason`` says why)."""

    id: int
    dataset: int
    algorithm: str
    parameters: JSON
    params_hash: str
    epsilon: Decimal
    delta: float
    status: str
    reason: str
    limit_hit: str
    progress: JobProgress
    cancelling: bool
    budget_state: str
    epsilon_spent: Decimal | None
    order: int | None
    order_status: str | None
    chain_order_id: int | None
    attempts: int
    runner_seconds: float | None
    receipt: JobReceipt | None
    created_at: datetime | None
    paid_at: datetime | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        return cls(
            id=int(data["id"]),
            dataset=int(data.get("dataset") or 0),
            algorithm=_str(data.get("algorithm")),
            parameters=dict(data.get("parameters") or {}),
            params_hash=_str(data.get("params_hash")),
            epsilon=_dec0(data.get("epsilon")),
            delta=_float(data.get("delta")) or 0.0,
            status=_str(data.get("status")),
            reason=_str(data.get("reason")),
            limit_hit=_str(data.get("limit_hit")),
            progress=JobProgress.from_json(data.get("progress")),
            cancelling=bool(data.get("cancelling")),
            budget_state=_str(data.get("budget_state")),
            epsilon_spent=_dec(data.get("epsilon_spent")),
            order=_int(data.get("order")),
            order_status=data.get("order_status"),
            chain_order_id=_int(data.get("chain_order_id")),
            attempts=_int(data.get("attempts")) or 0,
            runner_seconds=_float(data.get("runner_seconds")),
            receipt=JobReceipt.from_json(data.get("receipt")),
            created_at=_dt(data.get("created_at")),
            paid_at=_dt(data.get("paid_at")),
            queued_at=_dt(data.get("queued_at")),
            started_at=_dt(data.get("started_at")),
            finished_at=_dt(data.get("finished_at")),
            raw=dict(data),
        )

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "finished"


@dataclass(frozen=True)
class JobPage:
    count: int
    page: int
    next: str | None
    previous: str | None
    results: list[Job]


@dataclass(frozen=True)
class Artifact:
    """One released output of a finished job, with the SHA-256 the receipt covers."""

    name: str
    kind: str
    description: str
    size: int
    sha256: str
    download_url: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Artifact:
        return cls(
            name=_str(data.get("name")),
            kind=_str(data.get("kind")),
            description=_str(data.get("description")),
            size=_int(data.get("size")) or 0,
            sha256=_str(data.get("sha256")),
            download_url=_str(data.get("download_url")),
        )


@dataclass(frozen=True)
class JobResult:
    """``GET jobs/{id}/result/``: metrics and curves, and the artifacts to download."""

    job: int
    epsilon_spent: Decimal | None
    results: JSON
    artifacts: list[Artifact]
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobResult:
        return cls(
            job=int(data["job"]),
            epsilon_spent=_dec(data.get("epsilon_spent")),
            results=dict(data.get("results") or {}),
            artifacts=[Artifact.from_json(a) for a in data.get("artifacts") or [] if isinstance(a, dict)],
            raw=dict(data),
        )


@dataclass(frozen=True)
class DownloadedArtifact:
    name: str
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Check:
    """One comparison of a receipt check. ``ok`` is None for what cannot be checked yet."""

    name: str
    ok: bool | None
    detail: str
    source: str = "server"  # "server": the marketplace's check; "local": this client's own

    def to_json(self) -> JSON:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "source": self.source}


@dataclass(frozen=True)
class Receipt:
    """``GET jobs/{id}/receipt/``: the receipt and the server's checks against the chain."""

    job: int
    receipt: JobReceipt | None
    verified: bool | None
    checks: list[Check]
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Receipt:
        return cls(
            job=int(data["job"]),
            receipt=JobReceipt.from_json(data.get("receipt")),
            verified=data.get("verified") if isinstance(data.get("verified"), bool) else None,
            checks=[
                Check(name=_str(c.get("name")), ok=c.get("ok"), detail=_str(c.get("detail")))
                for c in data.get("checks") or []
                if isinstance(c, dict)
            ],
            raw=dict(data),
        )


@dataclass(frozen=True)
class Verification:
    """What :meth:`MarketplaceClient.verify` found: the server's checks against the chain and
    this client's own (local files re-hashed, parameters and result hash recomputed).
    ``ok`` is True when every check passed, False when one failed, None when something could
    not be checked yet (no receipt on chain)."""

    job: int
    checks: list[Check]

    @property
    def ok(self) -> bool | None:
        oks = [c.ok for c in self.checks]
        if False in oks:
            return False
        if None in oks or not oks:
            return None
        return True

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    def to_json(self) -> JSON:
        return {"job": self.job, "ok": self.ok, "checks": [c.to_json() for c in self.checks]}
