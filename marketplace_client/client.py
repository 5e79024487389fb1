"""A typed client for the marketplace's REST API (``/api/v1/``).

>>> client = MarketplaceClient("http://localhost:8000")
>>> client.login("buyer", "...")                            # or MarketplaceClient(url, token=...)
>>> page = client.datasets(q="heart", sort="price")
>>> job = client.job_create(page.results[0].id, "dp-statistics", {"epsilon": 0.5})
>>> job = client.follow_job(job.id, on_update=print)       # server-sent events, or polling
>>> client.results_download(job.id, "out/")
>>> client.verify(job.id, folder="out/").ok
True

Errors are raised as :mod:`marketplace_client.errors` classes. Throttled requests (429) are
retried after the server's ``Retry-After``; reads that hit a 503 or a dropped connection are
retried with backoff; writes are never replayed except after a 429 (which the server refused
before doing anything).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, BinaryIO, NamedTuple

import requests
import urllib3

from marketplace_client.errors import (
    APIError,
    AuthenticationError,
    NotFound,
    OperationFailed,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    TransportError,
    VerificationFailed,
    WaitTimeout,
    error_from_response,
)
from marketplace_client.types import (
    Algorithm,
    Budget,
    ChainListing,
    Check,
    Dataset,
    DatasetPage,
    DownloadedArtifact,
    Job,
    JobPage,
    JobResult,
    Order,
    Quote,
    Receipt,
    Schema,
    SchemaInfo,
    Verification,
)
from marketplace_client.version import __version__

__all__ = ["MarketplaceClient", "PublishResult", "params_hash", "result_hash", "sha256_file"]

JSON = dict[str, Any]
API = "/api/v1/"
# How a status change is reported while waiting: called with the latest object.
JobCallback = Callable[[Job], None]
StepCallback = Callable[[str, Any], None]


def params_hash(algorithm: str, parameters: Mapping[str, Any] | None) -> str:
    """What an order commits to on chain and the receipt's ``paramsHash``: SHA-256 of the
    canonical JSON of the algorithm and its normalised parameters (docs/compute.md)."""
    canonical = json.dumps(
        {"algorithm": algorithm, "parameters": dict(parameters or {})}, sort_keys=True, separators=(",", ":")
    )
    return "0x" + hashlib.sha256(canonical.encode()).hexdigest()


def result_hash(artifacts: Iterable[tuple[str, str]]) -> str:
    """The receipt's ``resultHash``: SHA-256 of the canonical JSON list of ``[name, sha256]``."""
    canonical = json.dumps(sorted([list(a) for a in artifacts]), separators=(",", ":"))
    return "0x" + hashlib.sha256(canonical.encode()).hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class PublishResult:
    """What :meth:`MarketplaceClient.publish` did: the dataset (submitted for review) and its
    listing on chain (None when ``on_chain=False``)."""

    dataset: Dataset
    listing: ChainListing | None


class _NotAnEventStream(Exception):
    """The events endpoint answered, but not with ``text/event-stream``."""


def _safe_name(name: str) -> str:
    """An artifact name usable as a file name inside the target folder, never a path out of it."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name or Path(name).name != name:
        raise VerificationFailed(f"Refusing an artifact name that is not a plain file name: {name!r}.")
    return name


class MarketplaceClient:
    """One marketplace server. ``base_url`` is the site (``http://localhost:8000``; a trailing
    ``/api/v1`` is accepted). ``token`` is an API token (``login`` gets one). ``timeout`` is
    seconds to connect and for each read. Pass a ``requests.Session`` to share connections or
    set proxies and certificates."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_retry_wait: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base = base_url.strip().rstrip("/")
        if base.endswith("/api/v1"):
            base = base[: -len("/api/v1")]
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"The marketplace URL must start with http:// or https:// (got {base_url!r}).")
        self.base_url = base
        self.token = token or None
        self.session = session or requests.Session()
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._sleep = sleep
        self._event_ids: dict[int, str] = {}
        self.session.headers.setdefault("User-Agent", f"marketplace-client/{__version__}")

    def __repr__(self) -> str:
        return f"MarketplaceClient({self.base_url!r}, token={'set' if self.token else None})"

    # --- plumbing ------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """The absolute URL of an API path (``jobs/3/``) or a site path (``/api/v1/jobs/3/``)."""
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith("/"):
            return self.base_url + path
        return self.base_url + API + path

    def _headers(self, url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token and url.startswith(self.base_url + "/"):  # never hand the token to another site
            headers["Authorization"] = f"Token {self.token}"
        headers.update(extra or {})
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, IO[bytes]]] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        timeout: float | tuple[float, float] | None = None,
    ) -> requests.Response:
        """Send one request and return the response, or raise the error it maps to. Retries a
        429 after ``Retry-After`` (any method: the server did nothing), and a 503 or a lost
        connection with backoff (reads only)."""
        method = method.upper()
        idempotent = method in ("GET", "HEAD", "OPTIONS")
        starts = {key: fh.tell() for key, (_, fh) in (files or {}).items() if fh.seekable()}
        url = self.url(path)
        attempt = 0
        while True:
            for key, (_, fh) in (files or {}).items():
                if key in starts:
                    fh.seek(starts[key])
            try:
                response = self.session.request(
                    method,
                    url,
                    params={k: v for k, v in (params or {}).items() if v is not None} or None,
                    json=json_body,
                    data=data,
                    files=files,
                    headers=self._headers(url, headers),
                    stream=stream,
                    timeout=timeout if timeout is not None else self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if idempotent and attempt < self.max_retries:
                    attempt += 1
                    self._sleep(min(2.0**attempt * 0.5, self.max_retry_wait))
                    continue
                raise TransportError(f"Could not reach {self.base_url}: {exc}") from exc
            except requests.RequestException as exc:
                raise TransportError(f"Request to {self.base_url} failed: {exc}") from exc
            if response.status_code < 400:
                return response
            error = self._error(response)
            retryable = isinstance(error, RateLimited) or (isinstance(error, ServiceUnavailable) and idempotent)
            if retryable and attempt < self.max_retries:
                wait = error.retry_after if error.retry_after is not None else min(2.0**attempt, 30.0)
                if wait <= self.max_retry_wait:
                    attempt += 1
                    response.close()
                    self._sleep(wait)
                    continue
            raise error

    @staticmethod
    def _error(response: requests.Response) -> APIError:
        text = ""
        payload: Any = None
        try:
            text = response.text
            payload = json.loads(text) if text else None
        except ValueError:
            payload = None
        except requests.RequestException:
            pass
        finally:
            response.close()
        return error_from_response(response.status_code, payload, headers=response.headers, text=text)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise APIError(
                f"The server answered {path} with something that is not JSON.",
                status=response.status_code,
                code="not_json",
            ) from exc

    def get(self, path: str, **params: Any) -> Any:
        """GET an API path and return its JSON (for endpoints this class has no method for)."""
        return self._json("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        """POST JSON to an API path and return the JSON answer."""
        return self._json("POST", path, json_body=body if body is not None else {})

    # --- auth ----------------------------------------------------------------------------------

    def login(self, username: str, password: str) -> str:
        """Exchange a username and password for an API token; the client uses it from now on."""
        answer = self._json("POST", "auth/token/", json_body={"username": username, "password": password})
        self.token = str(answer["token"])
        return self.token

    def require_token(self) -> None:
        if not self.token:
            raise AuthenticationError(
                "No API token: log in first (or set MARKETPLACE_TOKEN).", status=401, code="not_authenticated"
            )

    # --- datasets ------------------------------------------------------------------------------

    def datasets(
        self,
        q: str | None = None,
        *,
        tags: Iterable[str] | str | None = None,
        licence: str | None = None,
        price_min: Decimal | float | str | None = None,
        price_max: Decimal | float | str | None = None,
        sort: str | None = None,
        page: int = 1,
        page_size: int | None = None,
    ) -> DatasetPage:
        """One page of the catalogue of listed datasets. ``sort``: relevance, newest, oldest,
        price, -price. ``tags``: all must match."""
        if tags is not None and not isinstance(tags, str):
            tags = ",".join(tags)
        params = {
            "q": q or None,
            "tags": tags or None,
            "licence": licence,
            "price_min": None if price_min is None else str(price_min),
            "price_max": None if price_max is None else str(price_max),
            "sort": sort,
            "page": page,
            "page_size": page_size,
        }
        return self._dataset_page("datasets/", params, page, page_size)

    def iter_datasets(self, q: str | None = None, *, page_size: int = 50, **filters: Any) -> Iterator[Dataset]:
        """Every matching dataset, page after page."""
        page = 1
        while True:
            result = self.datasets(q, page=page, page_size=page_size, **filters)
            yield from result.results
            if not result.next:
                return
            page += 1

    def my_datasets(self, *, page: int = 1, page_size: int | None = None) -> DatasetPage:
        """My datasets in every state (drafts, pending review, listed...)."""
        return self._dataset_page("datasets/mine/", {"page": page, "page_size": page_size}, page, page_size)

    def _dataset_page(self, path: str, params: Mapping[str, Any], page: int, page_size: int | None) -> DatasetPage:
        answer = self._json("GET", path, params=params)
        results = [Dataset.from_json(d) for d in answer.get("results", [])]
        return DatasetPage(
            count=int(answer.get("count", len(results))),
            page=page,
            page_size=page_size or max(len(results), 20),
            next=answer.get("next"),
            previous=answer.get("previous"),
            results=results,
        )

    def dataset(self, dataset_id: int) -> Dataset:
        return Dataset.from_json(self._json("GET", f"datasets/{int(dataset_id)}/"))

    def dataset_create(
        self,
        file: str | os.PathLike[str] | BinaryIO,
        *,
        title: str,
        description: str | None = None,
        tags: Iterable[str] | str | None = None,
        licence: str | None = None,
        price: Decimal | float | str | None = None,
        price_token: str | None = None,
        epsilon_total: Decimal | float | str | None = None,
        epsilon_per_job: Decimal | float | str | None = None,
        delta: float | str | None = None,
        filename: str | None = None,
    ) -> Dataset:
        """Upload a CSV or Parquet file: a draft dataset with a proposed schema. The server then
        checks the whole file (``validation`` pending -> valid or invalid)."""
        self.require_token()
        if tags is not None and not isinstance(tags, str):
            tags = ",".join(tags)
        fields = {
            "title": title,
            "description": description,
            "tags": tags,
            "licence": licence,
            "price": price,
            "price_token": price_token,
            "epsilon_total": epsilon_total,
            "epsilon_per_job": epsilon_per_job,
            "delta": delta,
        }
        data = {k: str(v) for k, v in fields.items() if v is not None}
        if isinstance(file, str | os.PathLike):
            path = Path(file)
            with path.open("rb") as fh:
                answer = self._json("POST", "datasets/", data=data, files={"file": (filename or path.name, fh)})
        else:
            name = filename or os.path.basename(str(getattr(file, "name", "") or "")) or "data.csv"
            answer = self._json("POST", "datasets/", data=data, files={"file": (name, file)})
        return Dataset.from_json(answer)

    def dataset_update(self, dataset_id: int, **fields: Any) -> Dataset:
        """Edit the listing (owner): title, description, tags, licence, price, epsilons, delta."""
        body = {k: (",".join(v) if k == "tags" and not isinstance(v, str) else str(v)) for k, v in fields.items()}
        return Dataset.from_json(self._json("PATCH", f"datasets/{int(dataset_id)}/", json_body=body))

    def dataset_delete(self, dataset_id: int) -> None:
        self._json("DELETE", f"datasets/{int(dataset_id)}/")

    def schema(self, dataset_id: int) -> SchemaInfo:
        """The declared (public) schema and, for the owner, the platform's proposal."""
        return SchemaInfo.from_json(self._json("GET", f"datasets/{int(dataset_id)}/schema/"))

    def schema_declare(
        self,
        dataset_id: int,
        schema: Schema | Mapping[str, Any],
        *,
        public_row_count: int | None = None,
        holdout_fraction: float | None = None,
    ) -> SchemaInfo:
        """Confirm (or edit) the declared schema (owner; draft or rejected datasets only) with the
        public approximate row count (required on first confirmation; it becomes public) and,
        optionally, the holdout fraction (0 to 0.5)."""
        body = schema.to_json() if isinstance(schema, Schema) else dict(schema)
        if public_row_count is not None:
            body["public_row_count"] = int(public_row_count)
        if holdout_fraction is not None:
            body["holdout_fraction"] = float(holdout_fraction)
        return SchemaInfo.from_json(self._json("PUT", f"datasets/{int(dataset_id)}/schema/", json_body=body))

    def dataset_submit(self, dataset_id: int) -> Dataset:
        """Submit a draft (or rejected) dataset for review."""
        return Dataset.from_json(self._json("POST", f"datasets/{int(dataset_id)}/submit/", json_body={}))

    def mock_csv(self, dataset_id: int, *, rows: int | None = None, seed: int | None = None) -> bytes:
        """Mock data (CSV) built from the declared schema: develop against it, never the real rows."""
        response = self.request("GET", f"datasets/{int(dataset_id)}/mock/", params={"rows": rows, "seed": seed})
        return response.content

    def dataset_wait_valid(
        self,
        dataset_id: int,
        *,
        timeout: float = 300.0,
        on_update: Callable[[Dataset], None] | None = None,
    ) -> Dataset:
        """Wait until the server has checked the whole file. Raises OperationFailed when the
        file is invalid, WaitTimeout after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        interval = 0.25
        while True:
            dataset = self.dataset(dataset_id)
            if on_update:
                on_update(dataset)
            if dataset.validation in (None, "valid"):
                return dataset
            if dataset.validation == "invalid":
                raise OperationFailed(f"The file failed validation: {dataset.validation_detail or 'no detail'}")
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"Dataset {dataset_id} is still being validated after {timeout:.0f} s.")
            self._sleep(interval)
            interval = min(interval * 1.5, 3.0)

    # --- chain: publishing, wallets, orders ---------------------------------------------------

    def dataset_publish(self, dataset_id: int, *, tx_hash: str | None = None) -> ChainListing:
        """Publish my dataset on chain (data NFT + datatoken + price + budget caps): from my
        managed wallet, or register the ``tx_hash`` my own wallet sent. Answers at once with the
        listing ``publishing``; see :meth:`listing_wait_published`."""
        body = {"tx_hash": tx_hash} if tx_hash else {}
        return ChainListing.from_json(self._json("POST", f"datasets/{int(dataset_id)}/publish/", json_body=body))

    def dataset_chain(self, dataset_id: int) -> ChainListing:
        """The dataset on chain: NFT, datatoken, price, privacy budget used and left."""
        return ChainListing.from_json(self._json("GET", f"datasets/{int(dataset_id)}/chain/"))

    def listing_wait_published(
        self,
        dataset_id: int,
        *,
        timeout: float = 300.0,
        on_update: Callable[[ChainListing], None] | None = None,
    ) -> ChainListing:
        """Wait until the publish transaction is mined and checked. Raises OperationFailed when
        the listing failed, WaitTimeout after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        interval = 0.25
        while True:
            listing = self.dataset_chain(dataset_id)
            if on_update:
                on_update(listing)
            if listing.state == "published":
                return listing
            if listing.state == "failed":
                raise OperationFailed(f"Publishing on chain failed: {listing.error or 'no reason given'}")
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"Dataset {dataset_id} is still publishing after {timeout:.0f} s.")
            self._sleep(interval)
            interval = min(interval * 1.5, 3.0)

    def publish(
        self,
        file: str | os.PathLike[str] | BinaryIO,
        *,
        title: str,
        schema: Schema | Mapping[str, Any] | None = None,
        submit: bool = True,
        on_chain: bool = True,
        timeout: float = 300.0,
        on_step: StepCallback | None = None,
        public_row_count: int | None = None,
        **fields: Any,
    ) -> PublishResult:
        """The provider's whole path in one call: upload, wait for the file check, confirm the
        schema (``schema``, or the platform's proposal as is) with the public row count
        (``public_row_count``, or the server's suggestion: the row count to 2 significant figures,
        which becomes public), submit for review and publish on
        chain from the managed wallet. ``fields`` are :meth:`dataset_create`'s (price,
        epsilon_total, epsilon_per_job, delta, tags, licence, description...). ``on_step(name,
        obj)`` hears of each step: uploaded, validated, schema, submitted, publishing, published."""

        def step(name: str, obj: Any) -> None:
            if on_step:
                on_step(name, obj)

        dataset = self.dataset_create(file, title=title, **fields)
        step("uploaded", dataset)
        dataset = self.dataset_wait_valid(dataset.id, timeout=timeout)
        step("validated", dataset)
        current = self.schema(dataset.id)
        if schema is None:
            proposed = current.proposed or dataset.proposed_schema
            if proposed is None:
                raise OperationFailed("The server proposed no schema; pass one.")
            schema = proposed
        if public_row_count is None:
            public_row_count = current.suggested_public_row_count
        info = self.schema_declare(dataset.id, schema, public_row_count=public_row_count)
        step("schema", info)
        if submit:
            dataset = self.dataset_submit(dataset.id)
            step("submitted", dataset)
        listing = None
        if on_chain:
            listing = self.dataset_publish(dataset.id)
            step("publishing", listing)
            listing = self.listing_wait_published(dataset.id, timeout=timeout)
            step("published", listing)
        return PublishResult(dataset=self.dataset(dataset.id), listing=listing)

    def chain_info(self) -> JSON:
        """Chain id, contract addresses, operator, fee and confirmations."""
        return dict(self._json("GET", "chain/"))

    def wallets(self) -> list[JSON]:
        """My wallets (managed and SIWE-linked) with balances."""
        return list(self._json("GET", "wallets/"))

    def faucet(self) -> JSON:
        """Development chains only: top up my managed wallet with test funds."""
        return dict(self._json("POST", "wallets/faucet/", json_body={}))

    def orders(self, *, page: int = 1) -> list[Order]:
        answer = self._json("GET", "orders/", params={"page": page})
        return [Order.from_json(o) for o in answer.get("results", [])]

    def order(self, order_id: int) -> Order:
        return Order.from_json(self._json("GET", f"orders/{int(order_id)}/"))

    def reclaim_order(self, order_id: int) -> JSON:
        """After an order's on-chain deadline passed unsettled: take the payment back (the epsilon is
        released). A managed wallet's reclaim is sent by the marketplace (``transaction`` is None); an
        own wallet gets the call to send (``transaction``: ``to``, ``data``, the order tuple)."""
        return dict(self._json("POST", f"orders/{int(order_id)}/reclaim/", json_body={}))

    # --- compute -------------------------------------------------------------------------------

    def algorithms(self) -> list[Algorithm]:
        """The built-in DP algorithms with their parameters, bounds and defaults."""
        answer = self._json("GET", "algorithms/")
        return [Algorithm.from_json(a) for a in answer.get("algorithms", [])]

    def budget(self, dataset_id: int) -> Budget:
        """A dataset's privacy budget: caps, reserved, spent, left, and jobs you may see."""
        return Budget.from_json(self._json("GET", f"datasets/{int(dataset_id)}/budget/"))

    def job_quote(self, dataset_id: int, algorithm: str, parameters: Mapping[str, Any] | None = None) -> Quote:
        """Check a job's parameters and price it before paying. ``quote.problems`` lists what
        stands in the way (empty when it can go ahead); bad parameters raise InvalidRequest."""
        body = {"dataset": int(dataset_id), "algorithm": algorithm, "parameters": dict(parameters or {})}
        return Quote.from_json(self._json("POST", "jobs/quote/", json_body=body))

    def job_create(
        self,
        dataset_id: int,
        algorithm: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        order: int | None = None,
        tx_hash: str | None = None,
    ) -> Job:
        """Order and run a job. Without ``order`` or ``tx_hash`` the marketplace pays from my
        managed wallet (one transaction). Answers at once with the job ``created``."""
        body: JSON = {"dataset": int(dataset_id), "algorithm": algorithm, "parameters": dict(parameters or {})}
        if order is not None:
            body["order"] = int(order)
        if tx_hash:
            body["tx_hash"] = tx_hash
        return Job.from_json(self._json("POST", "jobs/", json_body=body))

    def job(self, job_id: int) -> Job:
        return Job.from_json(self._json("GET", f"jobs/{int(job_id)}/"))

    def jobs(self, *, role: str | None = None, page: int = 1, page_size: int | None = None) -> JobPage:
        """My jobs, newest first; ``role="provider"``: jobs run on my datasets."""
        answer = self._json("GET", "jobs/", params={"role": role, "page": page, "page_size": page_size})
        return JobPage(
            count=int(answer.get("count", 0)),
            page=page,
            next=answer.get("next"),
            previous=answer.get("previous"),
            results=[Job.from_json(j) for j in answer.get("results", [])],
        )

    def iter_jobs(self, *, role: str | None = None, page_size: int = 50) -> Iterator[Job]:
        page = 1
        while True:
            result = self.jobs(role=role, page=page, page_size=page_size)
            yield from result.results
            if not result.next:
                return
            page += 1

    def job_cancel(self, job_id: int) -> Job:
        """Cancel my job: a queued one ends at once (refunded), a running one within a second."""
        return Job.from_json(self._json("POST", f"jobs/{int(job_id)}/cancel/", json_body={}))

    def job_logs(self, job_id: int) -> list[JSON]:
        """The job's log: the platform's steps and the runner's messages (never rows)."""
        return list(self._json("GET", f"jobs/{int(job_id)}/logs/"))

    def job_events(self, job_id: int, *, last: Job | None = None, read_timeout: float = 60.0) -> Iterator[Job]:
        """The job as it changes, from the server-sent events endpoint (``GET jobs/{id}/events/``,
        ``event: status`` carrying the job), over one connection: it ends when the server closes
        the stream (after the terminal status, or after the connection's lifetime). Sends
        ``Last-Event-ID`` when reconnecting, so a state already seen is not sent again. Raises
        NotFound when the server has no such endpoint."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if job_id in self._event_ids:
            headers["Last-Event-ID"] = self._event_ids[job_id]
        response = self.request(
            "GET",
            f"jobs/{int(job_id)}/events/",
            headers=headers,
            stream=True,
            timeout=(min(self.timeout, 30.0), read_timeout),
        )
        try:
            if response.status_code == 204:  # the job ended and we saw its last event
                return
            if "text/event-stream" not in response.headers.get("Content-Type", ""):
                raise _NotAnEventStream(response.headers.get("Content-Type", ""))
            current = last
            for event in _sse_events(response):
                if event.id is not None:
                    self._event_ids[job_id] = event.id
                payload = _json_or_none(event.data)
                if event.name == "error":
                    body = payload if isinstance(payload, dict) else {"detail": event.data}
                    raise error_from_response(404 if body.get("code") == "not_found" else 500, body)
                if not isinstance(payload, dict):
                    continue
                merged = _merge_job(current, payload)
                if merged is None:
                    continue
                current = merged
                yield merged
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransportError(f"The event stream of job {job_id} broke off: {exc}") from exc
        finally:
            response.close()

    def follow_job(
        self,
        job_id: int,
        *,
        on_update: JobCallback | None = None,
        timeout: float | None = None,
        use_events: bool = True,
        poll_interval: float = 0.5,
        max_poll_interval: float = 5.0,
    ) -> Job:
        """Follow a job until it ends (finished, failed, cancelled or rejected) and return it.
        ``on_update(job)`` is called with every change. Uses the server-sent events endpoint
        when the server has one (reconnecting when a stream ends) and falls back to polling
        ``GET jobs/{id}/`` with backoff (``poll_interval`` growing to ``max_poll_interval``
        while nothing changes). Raises WaitTimeout after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last_seen: JSON | None = None

        def emit(job: Job) -> Job:
            nonlocal last_seen
            if job.raw != last_seen:
                last_seen = job.raw
                if on_update:
                    on_update(job)
            return job

        def expired() -> bool:
            return deadline is not None and time.monotonic() >= deadline

        job = emit(self.job(job_id))
        events = use_events
        interval = poll_interval
        failures = 0
        while not job.is_terminal:
            if expired():
                raise WaitTimeout(f"Job {job_id} is still {job.status} after {timeout:.0f} s.")
            if events:
                opened = time.monotonic()
                try:
                    for update in self.job_events(job_id, last=job):
                        job = emit(update)
                        if job.is_terminal or expired():
                            break
                    failures = 0
                    if not job.is_terminal and time.monotonic() - opened < 1.0:
                        self._sleep(poll_interval)  # a stream that ends at once must not spin
                except (NotFound, _NotAnEventStream):
                    events = False  # this server has no event stream: poll
                    continue
                except (TransportError, ServiceUnavailable):
                    failures += 1
                    if failures > 3:
                        events = False
                    self._sleep(min(2.0**failures * 0.25, max_poll_interval))
                # A stream may end between changes: read the row itself before reconnecting.
                if not job.is_terminal:
                    job = emit(self.job(job_id))
                continue
            self._sleep(interval)
            before = last_seen
            job = emit(self.job(job_id))
            interval = poll_interval if last_seen is not before else min(interval * 1.5, max_poll_interval)
        return job

    wait_job = follow_job

    # --- results and receipts ------------------------------------------------------------------

    def job_result(self, job_id: int) -> JobResult:
        """The released results of my finished job: metrics, curves and the artifacts."""
        return JobResult.from_json(self._json("GET", f"jobs/{int(job_id)}/result/"))

    def artifact_download(
        self,
        job_id: int,
        name: str,
        dest: str | os.PathLike[str],
        *,
        expected_sha256: str | None = None,
        chunk_size: int = 1 << 16,
    ) -> DownloadedArtifact:
        """Stream one artifact to ``dest`` (a file path, or an existing folder to put it in),
        hashing it on the way. Raises VerificationFailed (and keeps nothing) when its SHA-256 is
        not the one the server announced (``X-Content-SHA256``) or ``expected_sha256``."""
        name = _safe_name(name)
        target = Path(dest)
        if target.is_dir():
            target = target / name
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        response = self.request("GET", f"jobs/{int(job_id)}/result/{name}/", stream=True)
        digest = hashlib.sha256()
        size = 0
        try:
            with partial.open("wb") as out:
                for chunk in response.iter_content(chunk_size=chunk_size):
                    if chunk:
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
        except requests.RequestException as exc:
            partial.unlink(missing_ok=True)
            raise TransportError(f"The download of {name} broke off: {exc}") from exc
        finally:
            response.close()
        got = digest.hexdigest()
        for announced in (response.headers.get("X-Content-SHA256"), expected_sha256):
            if announced and announced.lower().removeprefix("0x") != got:
                partial.unlink(missing_ok=True)
                raise VerificationFailed(f"{name}: SHA-256 {got} is not the announced {announced}.")
        os.replace(partial, target)
        return DownloadedArtifact(name=name, path=str(target), size=size, sha256=got)

    def results_download(
        self,
        job_id: int,
        folder: str | os.PathLike[str],
        *,
        on_artifact: Callable[[DownloadedArtifact], None] | None = None,
    ) -> list[DownloadedArtifact]:
        """Download every artifact of my finished job into ``folder`` (created if needed), each
        checked against its SHA-256, and write ``job-<id>-result.json`` (metrics, curves and the
        artifact list) beside them."""
        result = self.job_result(job_id)
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        downloaded = []
        for artifact in result.artifacts:
            item = self.artifact_download(job_id, artifact.name, target, expected_sha256=artifact.sha256)
            downloaded.append(item)
            if on_artifact:
                on_artifact(item)
        summary = target / f"job-{int(job_id)}-result.json"
        if summary.name not in {a.name for a in result.artifacts}:
            summary.write_text(json.dumps(result.raw, indent=2, sort_keys=True) + "\n")
        return downloaded

    def receipt(self, job_id: int) -> Receipt:
        """The job's receipt with the server's checks: every hash recomputed from what the
        marketplace holds and compared with the ``ReceiptRecorded`` event on chain."""
        return Receipt.from_json(self._json("GET", f"jobs/{int(job_id)}/receipt/"))

    def verify(self, job_id: int, *, folder: str | os.PathLike[str] | None = None, wait: float = 0.0) -> Verification:
        """Check a job's receipt: the server's checks against the chain, plus this client's own:
        the parameters hash recomputed here and, with ``folder`` (where :meth:`results_download`
        put the artifacts), every local file re-hashed and the result hash recomputed from them.
        The receipt goes on chain a moment after the job ends: with ``wait`` (seconds) the checks
        are repeated while some cannot be made yet."""
        deadline = time.monotonic() + wait
        while True:
            verification = self._verify_once(job_id, folder)
            if verification.ok is not None or time.monotonic() >= deadline:
                return verification
            self._sleep(1.0)

    def _verify_once(self, job_id: int, folder: str | os.PathLike[str] | None) -> Verification:
        receipt = self.receipt(job_id)
        job = self.job(job_id)
        checks = list(receipt.checks)
        recomputed = params_hash(job.algorithm, job.parameters)
        committed = receipt.receipt.params_hash if receipt.receipt else job.params_hash
        checks.append(
            Check(
                "local parameters",
                recomputed.lower() == committed.lower() == job.params_hash.lower(),
                f"SHA-256 of the algorithm and parameters, recomputed here: {recomputed}",
                source="local",
            )
        )
        if folder is not None:
            checks.extend(self._local_result_checks(job, receipt, Path(folder)))
        elif job.status == "finished":
            checks.extend(self._downloaded_result_checks(job, receipt))
        return Verification(job=job.id, checks=checks)

    def _downloaded_result_checks(self, job: Job, receipt: Receipt) -> list[Check]:
        """Without a folder, the buyer's verify downloads the artifacts afresh into a temporary
        folder and re-hashes those bytes against the receipt (the provider, who may not download
        them, relies on the server's checks)."""
        with tempfile.TemporaryDirectory(prefix=f"verify-job-{int(job.id)}-") as tmp:
            try:
                result = self.job_result(job.id)
                for artifact in result.artifacts:
                    self.artifact_download(job.id, artifact.name, tmp)
            except PermissionDenied:
                return []
            except VerificationFailed as exc:
                return [Check("local download", False, str(exc), source="local")]
            return self._local_result_checks(job, receipt, Path(tmp))

    def _local_result_checks(self, job: Job, receipt: Receipt, folder: Path) -> list[Check]:
        if job.status != "finished":
            return []  # nothing was released: no local files to compare
        result = self.job_result(job.id)
        checks: list[Check] = []
        pairs: list[tuple[str, str]] = []
        for artifact in result.artifacts:
            path = folder / _safe_name(artifact.name)
            if not path.is_file():
                checks.append(Check(f"local {artifact.name}", False, f"Missing: {path}", source="local"))
                continue
            got = sha256_file(path)
            pairs.append((artifact.name, got))
            checks.append(
                Check(
                    f"local {artifact.name}",
                    got == artifact.sha256,
                    f"SHA-256 of {path}: {got}" + ("" if got == artifact.sha256 else f" (expected {artifact.sha256})"),
                    source="local",
                )
            )
        on_chain = receipt.receipt.result_hash if receipt.receipt else ""
        if not on_chain:
            checks.append(Check("local result hash", None, "No result hash on the receipt yet.", source="local"))
        elif len(pairs) == len(result.artifacts):
            recomputed = result_hash(pairs)
            checks.append(
                Check(
                    "local result hash",
                    recomputed.lower() == on_chain.lower(),
                    f"SHA-256 over the {len(pairs)} local files: {recomputed} (receipt: {on_chain})",
                    source="local",
                )
            )
        return checks


# --- server-sent events ---------------------------------------------------------------------


class _Event(NamedTuple):
    name: str
    data: str
    id: str | None


def _sse_events(response: requests.Response) -> Iterator[_Event]:
    """The events of a ``text/event-stream`` body as they arrive (the WHATWG format: ``field:
    value`` lines, a blank line dispatches, ``:`` lines are comments, ``id`` persists)."""
    return _sse_parse(_chunks(response))


def _sse_parse(chunks: Iterable[bytes]) -> Iterator[_Event]:
    buffer = b""
    name = ""
    data_lines: list[str] = []
    last_id: str | None = None
    for chunk in chunks:
        buffer += chunk
        while True:
            cut = min((i for i in (buffer.find(b"\n"), buffer.find(b"\r")) if i >= 0), default=-1)
            if cut < 0 or (buffer[cut : cut + 1] == b"\r" and cut == len(buffer) - 1):
                break  # no whole line yet (a lone CR may be half of a CRLF)
            line = buffer[:cut].decode("utf-8", "replace")
            buffer = buffer[cut + (2 if buffer[cut : cut + 2] == b"\r\n" else 1) :]
            if not line:
                if data_lines:
                    yield _Event(name or "message", "\n".join(data_lines), last_id)
                name, data_lines = "", []
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data_lines.append(value)
            elif field == "id" and "\x00" not in value:
                last_id = value
    # An event cut off by the end of the stream (no blank line) is dropped, as the format says.


def _chunks(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives: ``read1`` gives whatever is there rather than waiting for a
    full buffer, so an event is seen as soon as it is sent (chunked or not)."""
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    if read1 is None:  # pragma: no cover - urllib3 < 2
        yield from response.iter_content(chunk_size=1)
        return
    while True:
        chunk = read1(65536)
        if not chunk:
            return
        yield chunk


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _merge_job(current: Job | None, payload: JSON) -> Job | None:
    """A job from an event: the whole job (``{"id":..., "status":...}``), the job under a key
    (``{"job": {...}}``), or only what changed (status, progress), laid over the last one."""
    body = payload.get("job") if isinstance(payload.get("job"), dict) else payload
    if not isinstance(body, dict):
        return None
    if current is None:
        return Job.from_json(body) if "id" in body and "status" in body else None
    if "id" in body and _as_int(body["id"]) != current.id:
        return None
    if not ({"status", "progress"} & body.keys()):
        return None
    merged = {**current.raw, **body}
    if isinstance(body.get("progress"), dict) and "status" not in body:
        merged["progress"] = {**(current.raw.get("progress") or {}), **body["progress"]}
    return Job.from_json(merged)
