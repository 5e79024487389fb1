"""API load benchmark: the catalogue list endpoint (``GET /api/v1/datasets/``) served by gunicorn
(2 workers, production settings) from PostgreSQL holding 10,000 listings, beside a trivial Django
view (``GET /healthz/``) served by the same server in the same run, under the same load.

Run from the repository root::

    .venv/bin/python bench/api_load.py [--listings 10000] [--clients 4] [--rounds 5] [--seconds 3]

Needs PostgreSQL: ``BENCH_DATABASE_URL`` (default
postgres://postgres@127.0.0.1:5432/ppdx_bench_api_load). The database is created, seeded and
dropped at the end (unless ``--keep``); gunicorn is stopped whatever happens.

The endpoints are measured in interleaved rounds (each round runs every endpoint for ``--seconds``,
in a rotated order), so machine noise falls on all of them alike. The load generator is
``--clients`` threads in this process, each a keep-alive ``http.client`` connection sending the
next request as soon as the last one is answered (a closed loop; gunicorn's sync workers close
the connection after each answer and the client reconnects, while ``--worker-class gthread``,
docker/'s choice, keeps it open). It shares the machine's cores with
the server: the throughputs are what this machine serves with that load generator beside it, and
the ratio is the figure to compare.

The catalogue list is served from memory while the catalogue is unchanged
(marketplace/api/catalogue_cache.py: pages keyed on a generation that PostgreSQL triggers change
with every write to what the list shows, so never stale). A fourth endpoint asks for a query
string never seen before on every request, so each page is built from the database: the cost
without that cache, printed beside the rest."""

from __future__ import annotations

import argparse
import base64
import http.client
import itertools
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import REPO_ROOT, percentile, remove_tree, report, setup_django  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/ppdx_bench_api_load"
TARGET_RATIO = 0.5
LISTED_SHARE = 0.9  # bench.catalog_search.seed lists ~90 % of the datasets it creates, at random
# Distinct client addresses sent as X-Forwarded-For: DRF's anonymous throttle keeps one request
# history per address, and one address sending thousands of requests a minute would make that
# history (pickled in and out of the cache on every request) the cost being measured.
CLIENT_ADDRESSES = 100

TRIVIAL = ("trivial view", "/healthz/")
TARGETED = "catalogue list"
ENDPOINTS = [
    TRIVIAL,
    (TARGETED, "/api/v1/datasets/"),
    ("catalogue search", "/api/v1/datasets/?q=customer+churn&licence=CC-BY-4.0"),
    # A query string never seen before on every request: no page is ever served from memory
    # (marketplace/api/catalogue_cache.py), so this is the cost of building one.
    ("catalogue list, every page built", "/api/v1/datasets/?nocache={n}"),
]
_unique = itertools.count()


@dataclass
class Tally:
    requests: int = 0
    seconds: float = 0.0
    cpu_server: float = 0.0  # gunicorn workers' CPU seconds
    cpu_db: float = 0.0  # PostgreSQL backends' CPU seconds
    cpu_client: float = 0.0  # the load generator's (this process's) CPU seconds
    latencies: list[float] = field(default_factory=list)


def listings_exact(target: int) -> int:
    """List or delist a few seeded datasets so exactly ``target`` are listed (``QuerySet.update``:
    the search table's triggers follow it, as they follow every write); return the number."""
    from django.db import connection
    from django.db.models import F

    from marketplace.models import Dataset

    listed = Dataset.objects.filter(status=Dataset.Status.LISTED)
    gap = target - listed.count()
    if gap > 0:
        ids = Dataset.objects.exclude(status=Dataset.Status.LISTED).order_by("pk").values_list("pk", flat=True)[:gap]
        Dataset.objects.filter(pk__in=list(ids)).update(status=Dataset.Status.LISTED, listed_at=F("created_at"))
    elif gap < 0:
        ids = listed.order_by("pk").values_list("pk", flat=True)[:-gap]
        Dataset.objects.filter(pk__in=list(ids)).update(status=Dataset.Status.DELISTED)
    if gap:
        with connection.cursor() as cur:
            cur.execute("ANALYZE marketplace_dataset")
            cur.execute("ANALYZE marketplace_datasetsearch")
    return Dataset.objects.filter(status=Dataset.Status.LISTED).count()


# --- the server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(*, database_url: str, data_dir: Path) -> dict[str, str]:
    """Production settings (DEBUG off) with throw-away secrets, the bench database and no chain."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CHAIN_", "DATASET_", "WALLET_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DATASET_ENCRYPTION_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        WALLET_ENCRYPTION_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        DATABASE_URL=database_url,
        MARKETPLACE_DATA_DIR=str(data_dir),
        DJANGO_SSL_REDIRECT="false",  # plain http on loopback; production redirects to https
        # High enough never to refuse the bench; the throttle itself still runs on every API request.
        API_THROTTLE_ANON="1000000/min",
        API_THROTTLE_USER="1000000/min",
        LOG_LEVEL="WARNING",
        PYTHONWARNINGS="ignore",
    )
    return env


def server_start(*, port: int, workers: int, worker_class: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        worker_class,
        "--log-level",
        "warning",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        server_wait(proc, port=port, log=log)
    except BaseException:
        server_stop(proc)
        raise
    return proc


def server_wait(proc: subprocess.Popen, *, port: int, log: Path) -> None:
    """Until the trivial view answers 200 (the URLconf, and so any import error, loads on the
    first request)."""
    deadline = time.monotonic() + 60
    status = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", TRIVIAL[1])
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer 200 within 60 s (last {status}):\n{log.read_text()[-3000:]}")


def server_stop(proc: subprocess.Popen | None) -> None:
    """Stop gunicorn gracefully (SIGTERM to the master), then kill its process group if needed."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def server_workers(master_pid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master_pid:
                pids.append(int(entry.name))
    return pids


def _cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


# --- the load -----------------------------------------------------------------------------------


def load(*, port: int, path: str, clients: int, seconds: float, first_address: int) -> tuple[int, float, list[float]]:
    """``clients`` closed-loop keep-alive clients on ``path`` for ``seconds``: requests answered,
    elapsed seconds, latencies (ms). Any answer but 200 is an error."""
    barrier = threading.Barrier(clients + 1)
    results: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    stop_at = [0.0]

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        times = results[i]
        n = first_address + i
        barrier.wait()
        deadline = stop_at[0]
        try:
            while True:
                address = n % CLIENT_ADDRESSES
                n += clients
                headers = {
                    "Accept": "application/json",
                    "X-Forwarded-For": f"127.0.{address // 250}.{address % 250 + 1}",
                }
                t0 = time.perf_counter()
                conn.request("GET", path.replace("{n}", str(next(_unique))), headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                t1 = time.perf_counter()
                if resp.status != 200:
                    errors.append(f"{path} answered {resp.status}: {body[:300]!r}")
                    return
                times.append((t1 - t0) * 1000)
                if t1 >= deadline:
                    return
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{path}: {exc!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    stop_at[0] = t0 + seconds
    barrier.wait()
    for t in threads:
        t.join(seconds + 60)
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(errors[0])
    latencies = [x for times in results for x in times]
    return len(latencies), elapsed, latencies


def db_backends(database: str) -> list[int]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        )
        return [row[0] for row in cur.fetchall()]


def measure(args, *, port: int, master_pid: int, database: str) -> dict[str, Tally]:
    from django.db import connection

    tallies = {label: Tally() for label, _ in ENDPOINTS}
    # Warm-up: every worker imports its views, opens its database connection and fills its caches.
    for _label, path in ENDPOINTS:
        load(port=port, path=path, clients=args.clients, seconds=args.warmup, first_address=0)
    address = 0
    for r in range(args.rounds):
        shift = r % len(ENDPOINTS)
        for label, path in ENDPOINTS[shift:] + ENDPOINTS[:shift]:
            workers = server_workers(master_pid)
            backends = db_backends(database)
            cpu0, db0, client0 = _cpu_seconds(workers), _cpu_seconds(backends), time.process_time()
            n, seconds, latencies = load(
                port=port, path=path, clients=args.clients, seconds=args.seconds, first_address=address
            )
            address += n
            tally = tallies[label]
            tally.cpu_server += _cpu_seconds(workers) - cpu0
            tally.cpu_db += _cpu_seconds(backends) - db0
            tally.cpu_client += time.process_time() - client0
            tally.requests += n
            tally.seconds += seconds
            tally.latencies.extend(latencies)
    connection.close()
    return tallies


def check_catalogue(port: int, listed: int) -> None:
    """The first page really is the catalogue: 20 rows and the listed total."""
    import json

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", ENDPOINTS[1][1])
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    if resp.status != 200 or body.get("count") != listed or len(body.get("results", [])) != 20:
        raise RuntimeError(f"unexpected catalogue page: {resp.status} count={body.get('count')} (want {listed})")


def print_report(tallies: dict[str, Tally], args) -> None:
    base = tallies[TRIVIAL[0]]
    base_rps = base.requests / base.seconds
    base_p95 = percentile(base.latencies, 95)
    setup = (
        f"{args.clients} keep-alive clients, {args.workers} {args.worker_class} workers,"
        f" {args.rounds} x {args.seconds:g} s"
    )
    report(
        f"{TRIVIAL[0]} throughput",
        base_rps,
        "req/s",
        anchor=f"GET {TRIVIAL[1]}, {base.requests:,} requests; {setup}",
        fmt="{:,.0f}",
    )
    report(f"{TRIVIAL[0]} p95", base_p95, "ms", anchor=f"p50 {percentile(base.latencies, 50):.1f} ms", fmt="{:.1f}")
    for label, path in ENDPOINTS:
        if label == TRIVIAL[0]:
            continue
        tally = tallies[label]
        rps = tally.requests / tally.seconds
        ratio = rps / base_rps
        targeted = label == TARGETED  # the target is the catalogue list; the search is shown beside it
        report(
            f"{label} throughput",
            rps,
            "req/s",
            target=f">= {TARGET_RATIO:.2f} x trivial view" if targeted else None,
            ok=ratio >= TARGET_RATIO if targeted else None,
            anchor=f"trivial view {base_rps:,.0f} req/s; ratio {ratio:.2f}; GET {path}, {tally.requests:,} requests",
            fmt="{:,.0f}",
        )
        p95 = percentile(tally.latencies, 95)
        report(
            f"{label} p95",
            p95,
            "ms",
            anchor=f"trivial view p95 {base_p95:.1f} ms; p50 {percentile(tally.latencies, 50):.1f} ms",
        )
    for label, _ in ENDPOINTS:
        tally = tallies[label]
        report(
            f"{label} server CPU per request",
            1000 * (tally.cpu_server + tally.cpu_db) / tally.requests,
            "ms",
            anchor=f"gunicorn workers {1000 * tally.cpu_server / tally.requests:.2f} ms"
            f" + PostgreSQL {1000 * tally.cpu_db / tally.requests:.2f} ms;"
            f" load generator {1000 * tally.cpu_client / tally.requests:.2f} ms",
            fmt="{:.2f}",
        )


def main() -> int:
    warnings.filterwarnings("ignore", message="No directory at", module="django.core.handlers.base")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listings", type=int, default=10_000, help="listed datasets to hold (default 10000)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent keep-alive clients (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class (default sync; docker/: gthread)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per endpoint per round (default 3)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per endpoint (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    args = parser.parse_args()

    # SIGTERM (a CI timeout, kill) unwinds through the finally below like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from bench.catalog_search import _db_name, database_drop, database_ensure, seed

    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    database = _db_name(url)
    existed = database_ensure(url)
    data_dir = server = None
    try:
        data_dir = setup_django(database_url=url, prefix="ppdx-bench-api-")
        from django.core.management import call_command
        from django.db import connection

        from marketplace.models import Dataset

        call_command("migrate", verbosity=0, interactive=False)
        rows = round(args.listings / LISTED_SHARE)
        if existed and Dataset.objects.count() == rows:
            print(f"seeding: skipped (reusing the kept database with {rows:,} datasets)")
        else:
            t0 = time.perf_counter()
            seed(rows)
            seconds = time.perf_counter() - t0
            report(
                f"seeding time ({rows:,} datasets, incl. tags, search table and ANALYZE)",
                seconds,
                "s",
                anchor=f"{rows / seconds:,.0f} rows/s",
            )
        listed = listings_exact(args.listings)
        with connection.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM marketplace_datasetsearch")
            in_search = cur.fetchone()[0]
        if in_search != listed:
            raise RuntimeError(f"search table holds {in_search} rows for {listed} listed datasets")
        print(f"listings: {listed:,} listed of {rows:,} datasets (search table {in_search:,} rows)", flush=True)
        connection.close()

        port = _free_port()
        server = server_start(
            port=port,
            workers=args.workers,
            worker_class=args.worker_class,
            env=server_env(database_url=url, data_dir=data_dir),
            log=data_dir / "gunicorn.log",
        )
        check_catalogue(port, listed)
        tallies = measure(args, port=port, master_pid=server.pid, database=database)
        print_report(tallies, args)
        return 0
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        server_stop(server)
        from django.db import connections

        connections.close_all()
        if not args.keep:
            database_drop(url)
        remove_tree(data_dir)


if __name__ == "__main__":
    sys.exit(main())
