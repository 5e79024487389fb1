"""`make run`'s supervisor (devtools/supervisor.py): a program that dies is restarted with a doubling
back-off and a log line naming it and its exit, while the others keep serving; Ctrl-C / SIGTERM
stops every process group. With the real worker and beat: beat is its own process and outlives a
SIGKILLed worker, and the restarted worker takes beat's messages."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.request

import psutil
import pytest

from devtools.broker import broker_settings
from devtools.management.commands.run_embedded import embedded_programs
from devtools.supervisor import Program, Supervisor, describe_exit
from tests.worker_support import database_url


class _Output(io.StringIO):
    def text(self) -> str:
        return self.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, output: _Output):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; supervisor output:\n{output.text()[-4000:]}")


def _start(supervisor: Supervisor) -> threading.Thread:
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    return thread


def test_a_killed_program_restarts_with_a_doubling_back_off_while_another_keeps_serving(tmp_path):
    port = _free_port()
    web = Program("web", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=str(tmp_path))
    # The crasher leaves a child behind in its group: it must die with its leader.
    crasher = Program(
        "crasher",
        [sys.executable, "-c", "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"],
    )
    output = _Output()
    supervisor = Supervisor([web, crasher], min_backoff=0.2, max_backoff=0.8, output=output)
    thread = _start(supervisor)
    _wait(lambda: supervisor.pid("web") and supervisor.pid("crasher"), 10, "both started", output)
    web_pid = supervisor.pid("web")

    answers: list[int] = []
    stop_polling = threading.Event()

    def poll_web() -> None:
        while not stop_polling.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:  # noqa: S310
                    answers.append(response.status)
            except OSError:
                answers.append(0)
            time.sleep(0.05)

    _wait(lambda: _serves(port), 10, "the web program", output)
    poller = threading.Thread(target=poll_web, daemon=True)
    poller.start()

    left_behind = []
    for restart in range(1, 5):
        pid = _wait(lambda: supervisor.pid("crasher"), 10, "the crasher", output)
        _wait(lambda pid=pid: psutil.Process(pid).children(), 10, "the crasher's child", output)
        left_behind += [child.pid for child in psutil.Process(pid).children()]
        os.kill(pid, signal.SIGKILL)
        _wait(lambda restart=restart: supervisor.restarts()["crasher"] == restart, 10, "a restart", output)
    stop_polling.set()
    poller.join()

    exits = r"crasher exited \(killed by SIGKILL\) after [\d.]+ s; restarting in ([\d.]+) s"
    delays = [float(d) for d in re.findall(exits, output.text())]
    assert delays == [0.2, 0.4, 0.8, 0.8], output.text()
    assert not [pid for pid in left_behind if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert supervisor.pid("web") == web_pid and supervisor.restarts()["web"] == 0
    assert len(answers) > 20 and set(answers) == {200}, "the web program kept answering throughout"

    supervisor.stop()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert not psutil.pid_exists(web_pid) or psutil.Process(web_pid).status() == "zombie"
    assert "stopping web" in output.text() and "stopping crasher" in output.text()


def _serves(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):  # noqa: S310
            return True
    except OSError:
        return False


def test_the_back_off_resets_once_a_program_stayed_up(tmp_path):
    output = _Output()
    flaky = Program("flaky", [sys.executable, "-c", "import time; time.sleep(0.4); raise SystemExit(3)"])
    supervisor = Supervisor([flaky], min_backoff=0.1, max_backoff=5, stable_seconds=0.3, output=output)
    thread = _start(supervisor)
    _wait(lambda: supervisor.restarts()["flaky"] >= 3, 15, "three restarts", output)
    supervisor.stop()
    thread.join(timeout=10)
    delays = re.findall(r"flaky exited \(exit code 3\) after [\d.]+ s; restarting in ([\d.]+) s", output.text())
    assert delays[:3] == ["0.1", "0.1", "0.1"], output.text()  # each run lasted past stable_seconds


def test_exit_descriptions():
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(1) == "exit code 1"


def test_make_run_runs_beat_as_its_own_process_never_inside_the_worker():
    programs = {p.name: list(p.argv) for p in embedded_programs(port="8123", env={})}
    assert set(programs) == {"web", "worker", "beat"}
    assert "beat" in programs["beat"] and "worker" not in programs["beat"]
    assert "-B" not in programs["worker"] and "--beat" not in programs["worker"]
    assert programs["web"][-1] == "127.0.0.1:8123"


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_beat_outlives_a_sigkilled_worker_and_the_restarted_worker_takes_its_messages(tmp_path, settings):
    broker = tmp_path / "broker"
    url, _, _ = broker_settings(broker)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(),
        "MARKETPLACE_TEST_DATA_DIR": str(tmp_path),
        "CELERY_INTEGRATION_BROKER_DIR": str(broker),
        "CELERY_INTEGRATION_MAIL_DIR": str(tmp_path),
        "CHAIN_INDEXER_INTERVAL_SECONDS": "1",
    }
    settings.DATA_DIR = tmp_path
    programs = [p for p in embedded_programs(port="0", env=env) if p.name != "web"]
    output = _Output()
    supervisor = Supervisor(programs, min_backoff=0.5, output=output, stop_grace_seconds=5)
    thread = _start(supervisor)
    try:
        indexer_runs = r"Task chain\.tasks\.indexer_run_task\[[^\]]+\] succeeded"
        _wait(lambda: re.search(indexer_runs, output.text()), 60, "beat's first task run", output)
        beat_pid, worker_pid = supervisor.pid("beat"), supervisor.pid("worker")
        assert beat_pid and worker_pid and beat_pid != worker_pid
        worker_argv = psutil.Process(worker_pid).cmdline()
        assert "-B" not in worker_argv and "--beat" not in worker_argv

        os.kill(worker_pid, signal.SIGKILL)
        _wait(lambda: "worker exited (killed by SIGKILL)" in output.text(), 10, "the supervisor to notice", output)
        before = len(re.findall(indexer_runs, output.text()))
        _wait(lambda: len(re.findall(indexer_runs, output.text())) > before + 1, 60, "the new worker's runs", output)
        assert supervisor.pid("beat") == beat_pid, "beat did not die with the worker"
        assert supervisor.restarts() == {"worker": 1, "beat": 0}
        assert not psutil.pid_exists(worker_pid) or psutil.Process(worker_pid).status() == "zombie"
    finally:
        supervisor.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert "JSONDecodeError" not in output.text()
    assert url.endswith("broker.sqlite3")
