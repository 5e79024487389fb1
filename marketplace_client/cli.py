"""``python -m marketplace_client``: search, publish, order, run a job with a progress bar,
fetch and verify results. Configuration comes from flags or the environment
(``MARKETPLACE_URL``, ``MARKETPLACE_TOKEN``); ``--json`` prints the API's JSON for scripts.
Exit codes are in :data:`EXIT_CODES` (and docs/client.md)."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from marketplace_client.client import MarketplaceClient
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
    ServerError,
    TransportError,
    VerificationFailed,
    WaitTimeout,
)
from marketplace_client.progress import ProgressBar
from marketplace_client.types import AlgorithmParameter, Dataset, Job
from marketplace_client.version import __version__

__all__ = ["EXIT_CODES", "main"]

DEFAULT_URL = "http://localhost:8000"

EXIT_OK = 0
EXIT_FAILED = 1  # the job failed, was cancelled or rejected; verification found a mismatch; a quote has problems
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_PERMISSION = 4
EXIT_NOT_FOUND = 5
EXIT_INVALID = 6
EXIT_CONFLICT = 7
EXIT_RATE_LIMITED = 8
EXIT_UNAVAILABLE = 9
EXIT_TIMEOUT = 10
EXIT_UNVERIFIED = 11  # nothing to compare yet (no receipt on chain)

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_FAILED: "the job failed, was cancelled or rejected; a verification mismatch; a quote with problems",
    EXIT_USAGE: "bad command line",
    EXIT_AUTH: "not signed in: no token, a bad token, wrong password (401)",
    EXIT_PERMISSION: "not allowed (403)",
    EXIT_NOT_FOUND: "no such dataset, job or endpoint (404)",
    EXIT_INVALID: "invalid input (400, 413)",
    EXIT_CONFLICT: "refused in the current state, e.g. budget exhausted (409)",
    EXIT_RATE_LIMITED: "rate limited, still after retrying (429)",
    EXIT_UNAVAILABLE: "server error, unavailable or unreachable (5xx, network)",
    EXIT_TIMEOUT: "gave up waiting (the operation goes on)",
    EXIT_UNVERIFIED: "nothing to verify yet (the receipt is not on chain)",
}

# Most specific first.
_ERROR_EXITS: list[tuple[type[MarketplaceError], int]] = [
    (AuthenticationError, EXIT_AUTH),
    (PermissionDenied, EXIT_PERMISSION),
    (NotFound, EXIT_NOT_FOUND),
    (InvalidRequest, EXIT_INVALID),
    (Conflict, EXIT_CONFLICT),
    (RateLimited, EXIT_RATE_LIMITED),
    (ServerError, EXIT_UNAVAILABLE),
    (TransportError, EXIT_UNAVAILABLE),
    (WaitTimeout, EXIT_TIMEOUT),
    (OperationFailed, EXIT_FAILED),
    (VerificationFailed, EXIT_FAILED),
]


def exit_code_for(error: MarketplaceError) -> int:
    for cls, code in _ERROR_EXITS:
        if isinstance(error, cls):
            return code
    return EXIT_FAILED


class _Out:
    """Where a command writes: results on stdout, messages and progress on stderr."""

    def __init__(self, stdout: TextIO, stderr: TextIO, as_json: bool) -> None:
        self.stdout, self.stderr, self.json = stdout, stderr, as_json

    def data(self, value: Any) -> None:
        self.stdout.write(json.dumps(_jsonable(value), indent=2, sort_keys=True, default=str) + "\n")

    def line(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def note(self, text: str) -> None:
        self.stderr.write(text + "\n")
        self.stderr.flush()


def _jsonable(value: Any) -> Any:
    raw = getattr(value, "raw", None)
    if isinstance(raw, dict) and raw:
        return raw
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != "raw"}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return str(value)
    return value


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _num(value: Decimal | float | None, places: int = 2) -> str:
    if value is None:
        return "-"
    return f"{float(value):.{places}f}"


# --- parameters -------------------------------------------------------------------------------


def parse_parameters(pairs: Sequence[str] | None, params_json: str | None) -> dict[str, Any]:
    """``--params '{"epochs": 3}'`` (or ``@file.json``) overlaid with ``-p key=value`` pairs;
    each value is read as JSON when it parses (numbers, true, lists), as text otherwise."""
    params: dict[str, Any] = {}
    if params_json:
        text = Path(params_json[1:]).read_text() if params_json.startswith("@") else params_json
        loaded = json.loads(text)
        if not isinstance(loaded, dict):
            raise ValueError("--params must be a JSON object")
        params.update(loaded)
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"-p takes key=value, got {pair!r}")
        try:
            params[key.strip()] = json.loads(value)
        except ValueError:
            params[key.strip()] = value
    return params


# --- commands ---------------------------------------------------------------------------------


def cmd_login(client: MarketplaceClient, args: argparse.Namespace, out: _Out) -> int:
    password = args.password or os.environ.get("MARKETPLACE_PASSWORD") or getpass.getpass("Password: ")
    token = client.login(args.username, password)
    if out.json:
        out.data({"token": token, "username": args.username, "url": client.base_url})
    else:
        out.line(token)
        out.note(f"Signed in as {args.username}. Use it with: export MARKETPLACE_TOKEN={token}")
    return EXIT_OK


def _dataset_rows(datasets: Sequence[Dataset], out: _Out) -> None:
    out.line(f"{'id':>5}  {'title':<40} {'price':>10} {'eps/job':>8} {'eps cap':>8}  {'owner':<12} tags")
    for d in datasets:
        title = d.title if len(d.title) <= 40 else d.title[:39] + "~"
        price = f"{_num(d.price)} {d.price_token}".strip()
        out.line(
            f"{d.id:>5}  {title:<40} {price:>10} {_num(d.epsilon_per_job):>8} {_num(d.epsilon_total):>8}  "
            f"{d.owner[:12]:<12} {','.join(d.tags)}"
        )


def cmd_search(client: MarketplaceClient, args: argparse.Namespace, out: _Out) -> int:
    filters: dict[str, Any] = {
        "tags": args.tags,
        "licence": args.licence,
        "price_min": args.price_min,
        "price_max": args.price_max,
        "sort": args.sort,
    }
    if args.all:
        found = list(client.iter_datasets(args.query, page_size=args.page_size or 50, **filters))
        if out.json:
            out.data({"count": len(found), "results": found})
            return EXIT_OK
        _dataset_rows(found, out)
        out.note(_count(len(found), "dataset"))
        return EXIT_OK
    page = client.datasets(args.query, page=args.page, page_size=args.page_size, **filters)
    if out.json:
        out.data({"count": page.count, "next": page.next, "previous": page.previous, "results": page.results})
        return EXIT_OK
    _dataset_rows(page.results, out)
    more = " (--page for more)" if page.next else ""
    out.note(f"{_count(page.count, 'dataset')}; page {page.page} of {page.pages}{more}")
    return EXIT_OK


def cmd_show(client: MarketplaceClient, args: argparse.Namespace, out: _Out) -> int:
    dataset = client.dataset(args.dataset)
    budget = None
    listing = None
    try:
        budget = client.budget(dataset.id)
    except APIError:
        pass
    try:
        listing = client.dataset_chain(dataset.id)
    except APIError:
        pass
    if out.json:
        out.data({"dataset": dataset, "budget": budget, "chain": listing})
        return EXIT_OK
    out.line(f"#{dataset.id} {dataset.title}  [{dataset.status}]")
    out.line(f"owner {dataset.owner}; licence {dataset.licence}; tags {', '.join(dataset.tags) or '-'}")
    out.line(
        f"price {_num(dataset.price)} {dataset.price_token}; epsilon per job {_num(dataset.epsilon_per_job)}, "
        f"total {_num(dataset.epsilon_total)}; delta {dataset.delta:g}"
    )
    if budget is not None:
        out.line(
            f"budget left {_num(budget.epsilon_left, 4)} (reserved {_num(budget.epsilon_reserved, 4)}, "
            f"spent {_num(budget.epsilon_spent, 4)})"
        )
    if listing is not None:
        out.line(f"on chain: {listing.state}; datatoken {listing.datatoken_address or '-'}")
    if dataset.validation is not None:
        out.line(
            f"validation {dataset.validation}" + (f": {dataset.validation_detail}" if dataset.validation_detail else "")
        )
    if dataset.description:
        out.line("")
        out.line(dataset.description)
    schema = dataset.declared_schema or dataset.proposed_schema
    if schema is not None:
        out.line("")
        out.line("schema" + ("" if dataset.declared_schema else " (proposed, not confirmed)") + ":")
        for column in schema.columns:
            bounds = ""
            if "categories" in column:
                bounds = "{" + ", ".join(map(str, column["categories"])) + "}"
            elif "min" in column or "max" in column:
                bounds = f"[{column.get('min')}, {column.get('max')}]"
            null = " nullable" if column.get("nullable") else ""
            out.line(f"  {column['name']:<24} {column['type']:<12} {bounds}{null}")
    return EXIT_OK


def cmd_publish(client: MarketplaceClient, args: argparse.Namespace, out: _Out) -> int:
    schema = json.loads(Path(args.schema).read_text()) if args.schema else None
    fields = {
        "description": args.description,
        "tags": args.tags,
        "licence": args.licence,
        "price": args.price,
        "price_token": args.price_token,
        "epsilon_total": args.epsilon_total,
        "epsilon_per_job": args.epsilon_per_job,
        "delta": args.delta,
    }
    messages: dict[str, Callable[[Any], str]] = {
        "uploaded": lambda d: f"uploaded: dataset {d.id} (draft); checking the whole file...",
        "validated": lambda d: f"validated: {d.row_count if d.row_count is not None else '?'} rows",
        "schema": lambda s: f"schema confirmed: {len(s.declared.columns) if s.declared else 0} columns",
        "submitted": lambda d: f"submitted for review ({d.status})",
        "publishing": lambda listing: "publishing on chain (data NFT + datatoken)...",
        "published": lambda listing: f"published on chain: datatoken {listing.datatoken_address}",
    }

    def on_step(name: str, obj: Any) -> None:
        if name in messages:
            out.note(messages[name](obj))

    result = client.publish(
        args.file,
        title=args.title,
        schema=schema,
        submit=not args.no_submit,
        public_row_count=args.public_row_count,
        on_chain=not args.no_chain,
        timeout=args.wait_timeout,
        on_step=on_step,
        **{k: v for k, v in fields.items() if v is not None},
    )
    if out.json:
        out.data({"dataset": result.dataset, "chain": result.listing})
    else:
        out.line(str(result.dataset.id))
        out.note(f"dataset {result.dataset.id} is {result.dataset.status}; a moderator reviews it before it is listed")
    return EXIT_OK


def _parameter_text(p: AlgorithmParameter) -> str:
    bits = [p.get("type", "")]
    if p.get("required"):
        bits.append("required")
    elif p.get("default") is not None:
        bits.append(f"default {json.dumps(p.get('default'))}")
    low, high = p.get("min"), p.get("max")
    if low is not None and high is not None:
        bits.append(f"range {'(' if p.get('min_exclusive') else '['}{low}, {high}]")
    elif low is not None:
        bits.append(f"{'>' if p.get('min_exclusive') else '>='} {low}")
    elif high is not None:
        bits.append(f"<= {high}")
    if p.get("choices"):
        bits.append("one of " + ", ".join(map(str, p.get("choices") or [])))
    return "; ".join(b for b in bits if b)


def cmd_algorithms(client: MarketplaceClient, args: argparse.Namespace, out: _Out) -> int:
    algorithms = client.algorithms()
    if args.name:
        algorithms = [a for a in algorithms if a.name == args.name]
        if not algorithms:
            raise NotFound(f"No algorithm named {args.name!r}.", status=404, code="not_found")
    if out.json:
        out.data(algorithms)
        return EXIT_OK
    for algorithm in algorithms:
        out.line(f"{algorithm.name}: {algorithm.title} ({algorithm.kind})")
        if algorithm.summary:
            out.line(f"  {algorithm.summary}")
        for p in algorithm.parameters:
            out.line(f"    {p['name']:<22} {_parameter_text(p)}")
            if p.get("help"):
                out.line(f"    {'':<22} {p.get('help')}")
        out.line("")
    return EXIT_OK


def cmd_quote(client: MarketplaceClient, args: argparse.Namespace, out: _Out) -> int:
    quote = client.job_quote(args.dataset, args.algorithm, parse_parameters(args.param, args.params))
    if out.json:
        out.data(quote)
    else:
        out.line(f"price        {_num(quote.price)} {quote.payment_token_symbol} (fee {_num(quote.fee)})")
        out.line(
            f"epsilon      {quote.epsilon} (delta {quote.delta:g}); budget left {quote.epsilon_left} -> "
            f"{quote.epsilon_left_after}"
        )
        out.line(f"wallet       balance {_num(quote.balance)} {quote.payment_token_symbol}")
        out.line(f"params_hash  {quote.params_hash}")
        out.line(f"parameters   {json.dumps(quote.parameters, sort_keys=True)}")
        out.line(f"releases     {quote.release}")
        for problem in quote.problems:
            out.line(f"problem      {problem}")
    return EXIT_OK if quote.ok else EXIT_FAILED


def _follow(client: MarketplaceClient, job: Job, args: argparse.Namespace, out: _Out) -> Job:
    bar = ProgressBar(out.stderr, enabled=not args.no_progress)
    try:
        with bar:
            bar.update(job)
            return client.follow_job(
                job.id, on_update=bar.update, timeout=args.wait_timeout, use_events=not args.no_events
            )
    except KeyboardInterrupt:
        out.note(
            f"\nstopped following; job {job.id} goes on (cancel it with: python -m marketplace_client cancel {job.id})"
        )
        raise


def _job_line(job: Job) -> str:
    spent = f"; epsilon spent {job.epsilon_spent}" if job.epsilon_spent is not None else ""
    reason = f": {job.reason}" if job.reason and job.status != "finished" else ""
    return f"job {job.id} {job.status}{reason}{spent}"


def _finish_job(client: MarketplaceClient, job: Job, args: argparse.Namespace, out: _Out) -> int:
    downloaded = []
    if job.succeeded and getattr(args, "download", None):
        downloaded = client.results_download(job.id, args.download)
    if out.json:
        out.data({"job": job, "downloaded": downloaded} if downloaded else job)
    else:
        out.line(_job_line(job))
        for item in downloaded:
            out.line(f"  {item.path}")
    return EXIT_OK if job.succeeded else EXIT_FAILED


def cmd_run(client: MarketplaceClient, args: argparse.Namespace, out: _Out) -> int:
    parameters = parse_parameters(args.param, args.params)
    job = client.job_create(args.dataset, args.algorithm, parameters)
    out.note(f"job {job.id} created on dataset {args.dataset} ({args.algorithm}, epsilon {job.epsilon})")
    if args.no_wait:
        if out.json:
            out.data(job)
        else:
            out.line(str(job.id))
        return EXIT_OK
    job = _follow(client, job, args, out)
    return _finish_job(client, job, args, out)


def cmd_jobs(client: MarketplaceClient, args: argparse.Namespace, out: _Out) -> int:
    if args.job is not None:
        job = client.job(args.job)
        if args.follow and not job.is_terminal:
            job = _follow(client, job, args, out)
            return _finish_job(client, job, args, out)
        if out.json:
            out.data(job)
        else:
            out.line(_job_line(job))
            p = job.progress
            out.line(
                f"  dataset {job.dataset}; {job.algorithm}; epsilon {job.epsilon}; progress {p.percent}%"
                + (f" ({p.phase})" if p.phase and not job.is_terminal else "")
            )
            out.line(f"  parameters {json.dumps(job.parameters, sort_keys=True)}")
            if job.receipt:
                out.line(f"  receipt: result {job.receipt.result_hash}; on chain: {job.receipt.recorded}")
        return EXIT_OK
    page = client.jobs(role=args.role, page=args.page)
    if out.json:
        out.data({"count": page.count, "next": page.next, "results": page.results})
        return EXIT_OK
    out.line(f"{'id':>5}  {'dataset':>7}  {'algorithm':<24} {'status':<12} {'epsilon':>8} {'spent':>8}  created")
    for job in page.results:
        created = job.created_at.strftime("%Y-%m-%d %H:%M") if job.created_at else "-"
        out.line(
            f"{job.id:>5}  {job.dataset:>7}  {job.algorithm:<24} {job.status:<12} {_num(job.epsilon):>8} "
            f"{_num(job.epsilon_spent):>8}  {created}"
        )
    out.note(_count(page.count, "job") + (" (--page for more)" if page.next else ""))
    return EXIT_OK


def cmd_cancel(client: MarketplaceClient, args: argparse.Namespace, out: _Out) -> int:
    job = client.job_cancel(args.job)
    if out.json:
        out.data(job)
    else:
        out.line(_job_line(job) + (" (stopping)" if job.cancelling else ""))
    return EXIT_OK


def cmd_results(client: MarketplaceClient, args: argparse.Namespace, out: _Out) -> int:
    folder = args.output or f"job-{args.job}"

    def on_artifact(item: Any) -> None:
        out.note(f"downloaded {item.name} ({item.size} bytes, sha256 {item.sha256[:16]}...)")

    downloaded = client.results_download(args.job, folder, on_artifact=on_artifact)
    if out.json:
        out.data({"job": args.job, "folder": str(folder), "artifacts": downloaded})
    else:
        for item in downloaded:
            out.line(item.path)
    return EXIT_OK


def cmd_verify(client: MarketplaceClient, args: argparse.Namespace, out: _Out) -> int:
    verification = client.verify(args.job, folder=args.dir, wait=args.wait)
    if out.json:
        out.data(verification.to_json())
    else:
        marks = {True: "ok  ", False: "FAIL", None: "--  "}
        for check in verification.checks:
            out.line(f"{marks[check.ok]} {check.name:<26} {check.detail}")
        verdict = {True: "verified", False: "MISMATCH", None: "not verifiable yet"}[verification.ok]
        out.line(f"job {verification.job}: {verdict}")
    if verification.ok is True:
        return EXIT_OK
    return EXIT_FAILED if verification.ok is False else EXIT_UNVERIFIED


# --- parser -----------------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    """Options accepted before or after the command (SUPPRESS keeps a later default from
    overwriting an earlier value)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help=f"server (env MARKETPLACE_URL; {DEFAULT_URL})")
    common.add_argument("--token", default=argparse.SUPPRESS, help="API token (env MARKETPLACE_TOKEN)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON on stdout")
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help="seconds per request (30)")
    return common


def _follow_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--no-events", action="store_true", help="poll instead of server-sent events")
    parser.add_argument("--wait-timeout", type=float, default=None, help="give up waiting after SECONDS")
    parser.add_argument("--download", metavar="DIR", help="download the results here when the job finishes")


def _param_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=int, help="dataset id")
    parser.add_argument("algorithm", help="algorithm name (see `algorithms`)")
    parser.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="a parameter (repeatable)")
    parser.add_argument("--params", metavar="JSON|@FILE", help="parameters as a JSON object")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="python -m marketplace_client",
        description="Command-line client of the privacy-preserving data marketplace (docs/client.md).",
        parents=[common],
        epilog="Exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()),
    )
    parser.add_argument("--version", action="version", version=f"marketplace-client {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, func: Callable[..., int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = command("login", cmd_login, "exchange a username and password for an API token (printed)")
    p.add_argument("-u", "--username", required=True)
    p.add_argument("-p", "--password", help="(env MARKETPLACE_PASSWORD; prompted otherwise)")

    p = command("search", cmd_search, "search the catalogue of listed datasets")
    p.add_argument("query", nargs="?", default=None, help="full-text query")
    p.add_argument("--tags", help="comma-separated; all must match")
    p.add_argument("--licence")
    p.add_argument("--price-min")
    p.add_argument("--price-max")
    p.add_argument("--sort", choices=["relevance", "newest", "oldest", "price", "-price"])
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=None)
    p.add_argument("--all", action="store_true", help="every page")

    p = command("show", cmd_show, "one dataset: listing, schema, privacy budget, chain")
    p.add_argument("dataset", type=int)

    p = command("publish", cmd_publish, "upload a CSV, confirm its schema, submit for review, publish on chain")
    p.add_argument("file", help="CSV or Parquet file")
    p.add_argument("--title", required=True)
    p.add_argument("--description")
    p.add_argument("--tags", help="comma-separated")
    p.add_argument("--licence")
    p.add_argument("--price", help="price of one compute job")
    p.add_argument("--price-token", help="payment token symbol")
    p.add_argument("--epsilon-total", help="privacy budget cap of the dataset")
    p.add_argument("--epsilon-per-job", help="cap of one job")
    p.add_argument("--delta")
    p.add_argument("--schema", metavar="FILE", help="declared schema (JSON); default: confirm the proposal as is")
    p.add_argument("--no-submit", action="store_true", help="leave it a draft")
    p.add_argument(
        "--public-row-count",
        type=int,
        metavar="N",
        help="public approximate row count to declare (default: the file's row count to 2 significant figures)",
    )
    p.add_argument("--no-chain", action="store_true", help="do not publish on chain")
    p.add_argument("--wait-timeout", type=float, default=300.0, help="seconds to wait for each step (300)")

    p = command("algorithms", cmd_algorithms, "the DP algorithms and their parameters")
    p.add_argument("name", nargs="?")

    p = command("quote", cmd_quote, "check parameters and price a job before paying")
    _param_options(p)

    p = command("run", cmd_run, "pay for a job from the managed wallet and follow it with a progress bar")
    _param_options(p)
    _follow_options(p)
    p.add_argument("--no-wait", action="store_true", help="print the job id and return")

    p = command("jobs", cmd_jobs, "my jobs, or one job (with --follow: follow it)")
    p.add_argument("job", type=int, nargs="?")
    p.add_argument("--role", choices=["buyer", "provider"], default=None, help="provider: jobs on my datasets")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--follow", action="store_true")
    _follow_options(p)

    p = command("cancel", cmd_cancel, "cancel my queued or running job")
    p.add_argument("job", type=int)

    p = command("results", cmd_results, "download every artifact of a finished job (checked against SHA-256)")
    p.add_argument("job", type=int)
    p.add_argument("-o", "--output", metavar="DIR", help="folder (default ./job-<id>)")

    p = command("verify", cmd_verify, "verify a job's receipt (server and chain; with --dir, local files too)")
    p.add_argument("job", type=int)
    p.add_argument("--dir", metavar="DIR", help="folder of downloaded results to re-hash")
    p.add_argument(
        "--wait", type=float, default=30.0, metavar="SECONDS", help="wait this long for the receipt to be on chain (30)"
    )
    return parser


def _report(error: MarketplaceError, out: _Out) -> None:
    if out.json:
        body: dict[str, Any] = {"code": error.code, "detail": error.detail, "status": error.status}
        if isinstance(error, APIError):
            if error.errors:
                body["errors"] = error.errors
            extra = {k: v for k, v in error.payload.items() if k not in ("code", "detail", "errors")}
            body.update(extra)
        out.data({"error": body})
    status = f"{error.status} " if error.status else ""
    out.note(f"error: {error.detail} [{status}{error.code}]")
    if isinstance(error, APIError):
        for field, messages in error.errors.items():
            for message in messages:
                out.note(f"  {field}: {message}")
        if isinstance(error, RateLimited) and error.retry_after is not None:
            out.note(f"  retry after {error.retry_after:.0f} s")


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    out = _Out(stdout, stderr, bool(getattr(args, "json", False)))
    url = getattr(args, "url", None) or os.environ.get("MARKETPLACE_URL") or DEFAULT_URL
    token = getattr(args, "token", None) or os.environ.get("MARKETPLACE_TOKEN") or None
    try:
        client = MarketplaceClient(url, token=token, timeout=getattr(args, "timeout", 30.0))
    except ValueError as exc:
        out.note(f"error: {exc}")
        return EXIT_USAGE
    try:
        return int(args.func(client, args, out))
    except MarketplaceError as error:
        _report(error, out)
        return exit_code_for(error)
    except (ValueError, OSError) as exc:
        out.note(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
