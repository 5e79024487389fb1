"""Soak test of the embedded stack (``make run``): ``manage.py run_embedded`` itself (anvil, the
demo seed, then web, worker and beat under the supervisor, the SQLite broker and SQLite) in a
throw-away data folder, under a steady stream of compute jobs for ``--minutes`` (default 10), with
the worker SIGKILLed once half-way.

Run from the repository root (needs ``npm ci`` for anvil, and bubblewrap)::

    .venv/bin/python bench/soak.py [--minutes 10] [--interval 8]

Jobs go in through the REST API as the demo buyer (``dp-statistics`` on the demo smart-meter
dataset, which is free, so the buyer's test USDC never runs out), one every ``--interval`` seconds;
a poller GETs the catalogue page twice a second. After the stream stops, jobs in flight get up to
``--drain-minutes`` to end. Figures:

* jobs finished, failed (ended any other way), stuck (not ended after the drain);
* process restarts (the supervisor's "exited ... restarting" lines);
* web availability: the share of the catalogue GETs answered 2xx or 3xx.

Targets: 0 failed, 0 stuck, availability >= 99.5 %."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import REPO_ROOT, remove_tree, report  # noqa: E402

DATASET_TITLE = "Household smart-meter electricity consumption"
PARAMETERS = {"epsilon": 0.2}  # the smallest the default accountant takes at the dataset's delta
AVAILABILITY_TARGET = 99.5  # percent
TERMINAL = {"finished", "failed", "cancelled", "rejected"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        self.token = ""

    def call(self, method: str, path: str, body: dict | None = None, timeout: float = 30) -> tuple[int, dict]:
        request = urllib.request.Request(  # noqa: S310 (loopback only)
            self.base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Token {self.token}"} if self.token else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback)
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"{}")
            except ValueError:
                return exc.code, {}
        except OSError as exc:  # no answer at all (counted, never fatal to the soak)
            return 0, {"code": "no_answer", "detail": f"{type(exc).__name__}: {exc}"}


class Poller(threading.Thread):
    """GETs ``url`` every ``period`` seconds and counts the answers."""

    def __init__(self, url: str, period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.url, self.period = url, period
        self.ok = self.total = 0
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.period):
            self.total += 1
            try:
                with urllib.request.urlopen(self.url, timeout=10) as response:  # noqa: S310
                    good = 200 <= response.status < 400
            except urllib.error.HTTPError as exc:
                good = 300 <= exc.code < 400
                if not good:
                    self.failures.append(f"{time.strftime('%H:%M:%S')} HTTP {exc.code}")
            except OSError as exc:
                good = False
                self.failures.append(f"{time.strftime('%H:%M:%S')} {type(exc).__name__}")
            self.ok += good


def _wait(predicate, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}\n{log.read_text()[-4000:]}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
            return response.status == 200
    except OSError:
        return False


def _worker_pid(launcher: subprocess.Popen) -> int | None:
    """The supervised Celery worker's main process (not its pool children)."""
    import psutil

    for child in psutil.Process(launcher.pid).children(recursive=False):
        try:
            argv = child.cmdline()
        except psutil.Error:
            continue
        if "celery" in " ".join(argv) and "worker" in argv:
            return child.pid
    return None


def run(minutes: float, interval: float, drain_minutes: float, data_dir: Path) -> bool:
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "MARKETPLACE_DATA_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "DATASET_ENCRYPTION_KEY", "DJANGO_SECRET_KEY"):
        env.pop(name, None)  # the embedded defaults, in the throw-away folder
    python = sys.executable
    log = data_dir / "run_embedded.log"
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO_ROOT, env=env, check=True)
    with log.open("w") as out:
        launcher = subprocess.Popen(
            # --noreload: a file edited in the checkout must not restart the web server mid-soak.
            [python, "manage.py", "run_embedded", "--port", str(port), "--noreload"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    api = Api(base + "/api/v1")
    poller = Poller(base + "/")
    jobs: list[int] = []
    refused: list[str] = []
    try:
        # The seed runs the demo jobs first (a minute or two on a fresh folder), then the web starts.
        _wait(lambda: _answers(base + "/healthz/"), 900, "the web server", log)
        status, body = api.call("POST", "/auth/token/", {"username": "buyer", "password": "buyer-demo-2026"})
        if status != 200:
            raise RuntimeError(f"no API token for the demo buyer: {status} {body}")
        api.token = body["token"]
        status, body = api.call("GET", "/datasets/")
        dataset = next(d["id"] for d in body["results"] if d["title"] == DATASET_TITLE)
        # The demo's cumulative delta cap (1e-4) allows ten jobs; the soak needs more. Its epsilon
        # (20, also the on-chain cap) allows 100 at PARAMETERS'.
        with sqlite3.connect(data_dir / "db.sqlite3", timeout=30) as db:
            db.execute("UPDATE marketplace_dataset SET delta_total = 0.01 WHERE id = ?", (dataset,))
        _wait(lambda: _worker_pid(launcher), 60, "the worker", log)
        poller.start()

        started = time.monotonic()
        end = started + minutes * 60
        kill_at = started + minutes * 30
        killed = False
        next_job = started
        while time.monotonic() < end:
            now = time.monotonic()
            if not killed and now >= kill_at:
                pid = _worker_pid(launcher)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    print(f"soak: SIGKILLed the worker (pid {pid}) at {now - started:.0f} s", flush=True)
                killed = True
            if now >= next_job:
                next_job += interval
                body = {"dataset": dataset, "algorithm": "dp-statistics", "parameters": PARAMETERS}
                status, answer = api.call("POST", "/jobs/", body)
                if status == 202:
                    jobs.append(answer["id"])
                else:
                    refused.append(f"{status} {answer.get('code')}: {answer.get('detail')}")
            time.sleep(0.2)

        def states() -> dict[int, str]:
            return {job_id: api.call("GET", f"/jobs/{job_id}/")[1].get("status", "?") for job_id in jobs}

        deadline = time.monotonic() + drain_minutes * 60
        while time.monotonic() < deadline and any(s not in TERMINAL for s in states().values()):
            time.sleep(2)
        poller.stop.set()
        poller.join()
        final = states()
    finally:
        poller.stop.set()
        launcher.send_signal(signal.SIGTERM)  # as Ctrl-C: the supervisor stops its programs, anvil last
        try:
            launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()

    text = log.read_text()
    restarts = len(re.findall(r"\| \S+ exited \(.*\) after [\d.]+ s; restarting", text))
    finished = sum(1 for s in final.values() if s == "finished")
    failed = sum(1 for s in final.values() if s in TERMINAL and s != "finished") + len(refused)
    stuck = sum(1 for s in final.values() if s not in TERMINAL)
    availability = 100.0 * poller.ok / max(poller.total, 1)
    report("soak: jobs submitted", len(jobs) + len(refused), "", fmt="{:.0f}")
    report("soak: jobs finished", finished, "", fmt="{:.0f}")
    report("soak: jobs failed", failed, "", target="0", ok=failed == 0, fmt="{:.0f}")
    report("soak: jobs stuck", stuck, "", target="0", ok=stuck == 0, fmt="{:.0f}")
    report("soak: process restarts (worker SIGKILLed once)", restarts, "", fmt="{:.0f}")
    report(
        "soak: web availability (catalogue GETs answered 2xx/3xx)",
        availability,
        "%",
        target=f">= {AVAILABILITY_TARGET} %",
        ok=availability >= AVAILABILITY_TARGET,
        fmt="{:.2f}",
    )
    for line in refused[:5]:
        print(f"  refused: {line}")
    for job_id, status in final.items():
        if status != "finished":
            print(f"  job {job_id}: {status}")
    for line in poller.failures[:5]:
        print(f"  web: {line}")
    if "JSONDecodeError" in text:
        print("  the log has a JSONDecodeError (a torn broker message?)")
    return failed == 0 and stuck == 0 and availability >= AVAILABILITY_TARGET


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--interval", type=float, default=8, help="seconds between two jobs")
    parser.add_argument("--drain-minutes", type=float, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the data folder (its logs) afterwards")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="ppdx-bench-soak-"))
    try:
        run(args.minutes, args.interval, args.drain_minutes, data_dir)
    finally:
        if args.keep:
            print(f"soak: data folder kept at {data_dir}")
        else:
            remove_tree(data_dir)


if __name__ == "__main__":
    main()
