"""The embedded broker of `make run` (devtools/broker.py): a message is never read torn,
and one a consumer took but never acknowledged (SIGKILLed) is delivered again to the next one."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.broker import broker_settings

REPO = Path(__file__).resolve().parents[2]

# Each helper process: connect to the broker in argv[1] and do argv[2] on queue "t".
CLIENT = r"""
import json, os, sys, time
from pathlib import Path
from kombu import Connection
from devtools.broker import broker_settings

url, transport, options = broker_settings(Path(sys.argv[1]))
with Connection(url, transport=transport, transport_options=options) as conn:
    queue = conn.SimpleQueue("t")
    if sys.argv[2] == "put-forever":  # prints each number once its message is committed
        n = 0
        while True:
            queue.put({"n": n, "pad": "x" * 4000})
            print(n, flush=True)
            n += 1
    elif sys.argv[2] == "take-and-hang":  # takes one message, never acknowledges it
        message = queue.get(timeout=10)
        print(json.dumps(message.payload), flush=True)
        time.sleep(600)
    elif sys.argv[2] == "drain":  # acknowledges everything there is, prints the payloads
        while True:
            try:
                message = queue.get(timeout=1.5)
            except queue.Empty:
                break
            print(json.dumps(message.payload), flush=True)
            message.ack()
"""


def _client(folder: Path, action: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(folder), action],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _drain(folder: Path) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-c", CLIENT, str(folder), "drain"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines()]  # a torn message fails here


def _rows(folder: Path) -> int:
    with sqlite3.connect(folder / "broker.sqlite3") as db:
        return db.execute("SELECT count(*) FROM kombu_message").fetchone()[0]


def test_a_message_taken_by_a_killed_consumer_is_delivered_again_and_then_deleted(tmp_path):
    producer = _client(tmp_path, "put-forever")
    while int(producer.stdout.readline()) < 2:  # three messages committed
        pass
    producer.kill()
    producer.wait()
    taker = _client(tmp_path, "take-and-hang")
    taken = json.loads(taker.stdout.readline())
    assert taken["n"] == 0
    taker.send_signal(signal.SIGKILL)  # dies holding message 0, unacknowledged
    taker.wait()

    payloads = _drain(tmp_path)
    numbers = sorted(p["n"] for p in payloads)
    assert numbers[:3] == [0, 1, 2], "the killed consumer's message is delivered again"
    assert len(numbers) == len(set(numbers)), "each message once"
    assert _rows(tmp_path) == 0, "acknowledged messages are deleted, not kept hidden"


def test_a_producer_killed_mid_write_leaves_no_torn_message(tmp_path):
    producer = _client(tmp_path, "put-forever")
    committed = -1
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        committed = int(producer.stdout.readline())
    producer.send_signal(signal.SIGKILL)  # most likely in the middle of a write
    producer.wait()
    # On a busy machine the producer runs ahead of this loop: what it printed before it died is
    # committed too (the pipe keeps it), so the last printed number is the last committed message.
    for line in producer.stdout:
        committed = int(line)
    assert committed > 20
    payloads = _drain(tmp_path)
    numbers = [p["n"] for p in payloads]
    # Every committed message is there, whole; at most the one being written when it died follows.
    assert numbers[: committed + 1] == list(range(committed + 1))
    assert len(numbers) in (committed + 1, committed + 2)
    assert all(p["pad"] == "x" * 4000 for p in payloads)


@pytest.mark.parametrize("folder_exists", [True, False])
def test_broker_settings_name_the_sqlite_file_and_the_transport(tmp_path, folder_exists):
    folder = tmp_path / "broker"
    if folder_exists:
        folder.mkdir()
    url, transport, options = broker_settings(folder)
    assert url == f"sqlite:///{folder}/broker.sqlite3" and folder.is_dir()
    assert transport == "devtools.broker:Transport"
    assert options["polling_interval"] <= 0.1  # part of every job's start-up latency


def test_acks_and_requeues_from_another_thread_while_the_consumer_polls(tmp_path):
    """Celery acknowledges from its result-handler thread: that must not touch the polling thread's
    session (sharing it crashed a prefork worker)."""
    import threading

    from kombu import Connection

    url, transport, options = broker_settings(tmp_path)
    with Connection(url, transport=transport, transport_options=options) as conn:
        queue = conn.SimpleQueue("t")
        for n in range(40):
            queue.put({"n": n})
        seen: list[int] = []
        errors: list[BaseException] = []
        pending: list = []

        def settle() -> None:
            try:
                while len(seen) < 41 or pending:
                    if pending:
                        message = pending.pop(0)
                        if message.payload["n"] == 7 and not message.payload.get("again"):
                            message.reject(requeue=True)  # delivered again, once
                        else:
                            message.ack()
                    else:
                        time.sleep(0.001)
            except BaseException as exc:  # pragma: no cover - the failure being tested
                errors.append(exc)

        worker = threading.Thread(target=settle)
        worker.start()
        deadline = time.monotonic() + 30
        while len(seen) < 41 and time.monotonic() < deadline and not errors:
            try:
                message = queue.get(timeout=0.5)
            except queue.Empty:
                continue
            seen.append(message.payload["n"])
            if seen.count(7) == 2:
                message.payload["again"] = True
            pending.append(message)
        worker.join(timeout=10)
    assert not errors, errors
    assert sorted(seen) == sorted([*range(40), 7]), "the requeued message came back once"
    assert _rows(tmp_path) == 0


def test_messages_of_a_queue_consumed_without_acknowledgements_are_not_kept(tmp_path):
    from kombu import Connection

    url, transport, options = broker_settings(tmp_path)
    with Connection(url, transport=transport, transport_options=options) as conn:
        queue = conn.SimpleQueue("t", no_ack=True)
        for n in range(3):
            queue.put({"n": n})
        assert [queue.get(timeout=2).payload["n"] for _ in range(3)] == [0, 1, 2]
    assert _rows(tmp_path) == 0
