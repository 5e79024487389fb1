# Permissive modes are the point here: host files left wide open must still be out of the sandbox's reach.
# ruff: noqa: S103
"""The bubblewrap launcher: a normal run, and every escape a hostile job might try (programs in ./hostile/).

Each hostile program exits 0 with an "ESCAPED: ..." log event only when its attack worked; the tests check the
Outcome the buyer would see and that the host saw no effect. Workspaces live under a 0711 folder in /tmp (pytest's
tmp_path is 0700, which the sandbox uid cannot traverse); as root each workspace leases a uid of its own from the
sandbox's pool, so "no process of the job's uid is left" and the process count are exact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import pytest

from compute_to_data.sandbox import (
    BubblewrapBackend,
    SandboxConfig,
    SandboxUnavailable,
    UnsandboxedBackend,
    Workspace,
    sandbox_preflight,
    workspace,
)
from tests.compute_to_data.sandbox.support import SMALL, run_code, uid_processes, wait_no_processes

pytestmark = pytest.mark.integration

# ------------------------------------------------------------------------------------------------- normal runs


def test_happy_path_events_output_and_identity(base: Path, config: SandboxConfig) -> None:
    code = """
import json, os
spec = json.load(open("/data/spec.json"))
for i in range(200):
    print(json.dumps({"event": "progress", "fraction": (i + 1) / 200}), flush=True)
print("not json")
print(json.dumps({"no_event": 1}))
print("[" * 60000)  # nests deeper than the JSON parser's recursion limit
print(json.dumps({"event": "log", "message": "x" * (70 << 10)}))
caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff:")][0]
print(json.dumps({"event": "log", "message": "identity", "uid": os.getuid(), "euid": os.geteuid(), "caps": caps}))
with open("/out/result.json", "w") as fh:
    json.dump({"epsilon": spec["epsilon"], "cwd": os.getcwd()}, fh)
"""
    with workspace(base, "happy", config) as ws:
        ws.write_input("spec.json", [b'{"epsilon": ', b"0.5}"])
        run = run_code(config, ws, code)
        assert run.outcome.ok, run.outcome
        assert run.outcome.limit is None and run.outcome.exit_code == 0 and run.outcome.reason == ""
        assert ws.output_files() == ["result.json"]
        with ws.open_output("result.json") as fh:
            assert json.load(fh) == {"epsilon": 0.5, "cwd": "/tmp"}

    identity = next(e for e in run.events if e.get("message") == "identity")
    assert identity["uid"] != 0 and identity["euid"] != 0
    assert int(identity["caps"], 16) == 0
    progress = [e for e in run.events if e["event"] == "progress"]
    assert len(progress) < 200  # rate-limited ...
    assert progress[-1]["fraction"] == 1.0  # ... but the last progress always arrives
    assert all("event" in e for e in run.events)
    assert not any(len(str(e.get("message", ""))) > 64 << 10 for e in run.events)


def test_environment_is_scrubbed(base: Path, config: SandboxConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "config.settings.production")
    monkeypatch.setenv("DATASET_ENCRYPTION_KEY", "c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk=")
    monkeypatch.setenv("SOME_SECRET", "hunter2-very-secret")
    code = "import json, os; print(json.dumps({'event': 'log', 'message': 'env', 'env': dict(os.environ)}))"
    with workspace(base, "env", config) as ws:
        run = run_code(config, ws, code, extra_env={"JOB_LABEL": "abc"})
        with pytest.raises(ValueError, match="DJANGO_DEBUG"):
            run_code(config, ws, "pass", extra_env={"DJANGO_DEBUG": "1"})
        for name in ("API_TOKEN", "aws_secret", "DB_PASSWORD", "SIGNING_KEY", "LD_PRELOAD", "PYTHONSTARTUP"):
            with pytest.raises(ValueError):
                run_code(config, ws, "pass", extra_env={name: "x"})
    env = next(e for e in run.events if e.get("message") == "env")["env"]
    assert env["JOB_LABEL"] == "abc" and env["HOME"] == "/tmp" and env["OMP_NUM_THREADS"] == "2"
    assert not [k for k in env if k.startswith("DJANGO_") or "SECRET" in k or "KEY" in k]
    assert "hunter2" not in json.dumps(env) and "c2VjcmV0" not in json.dumps(env)


def test_runner_error_event_selects_a_fixed_reason(base: Path, config: SandboxConfig) -> None:
    code = """
import json, sys
print(json.dumps({"event": "error", "code": "schema", "message": "Column age is missing."}), flush=True)
sys.stderr.write("Traceback: internal detail /secret/path\\n")
sys.exit(2)
"""
    with workspace(base, "error", config) as ws:
        run = run_code(config, ws, code)
    assert not run.outcome.ok and run.outcome.exit_code == 2 and run.outcome.limit is None
    # The code selects a sentence of a fixed list (an unknown code: the generic one); the message never shows.
    assert run.outcome.reason == "The runner reported an error."
    assert "internal detail" in run.outcome.stderr_tail
    assert [e["code"] for e in run.events if e["event"] == "error"] == ["schema"]

    with workspace(base, "exit", config) as ws:
        run = run_code(config, ws, "import sys; sys.exit(5)")
    assert run.outcome.reason == "The runner stopped with exit status 5." and run.outcome.exit_code == 5


def test_cpu_file_size_and_cancel_limits(base: Path, config: SandboxConfig) -> None:
    with workspace(base, "cpu", config) as ws:
        run = run_code(config, ws, "while True: pass", dataclasses.replace(SMALL, cpu_seconds=1))
        assert run.outcome.limit == "cpu", run.outcome
        assert run.outcome.reason == "The job exceeded its CPU-time limit of 1 s and was stopped."

        big = "open('/out/big.bin', 'wb').write(b'x' * (2 << 20))"
        run = run_code(config, ws, big, dataclasses.replace(SMALL, file_size_bytes=1 << 20))
        assert run.outcome.limit == "file_size", run.outcome
        assert (ws.output_dir / "big.bin").stat().st_size <= 1 << 20

        started = time.monotonic()
        run = run_code(
            config, ws, "import time; time.sleep(30)", should_cancel=lambda: time.monotonic() > started + 0.5
        )
        assert run.outcome.limit == "cancelled" and run.outcome.reason == "The job was cancelled."
        assert run.outcome.wall_seconds < 3


def test_workspace_is_private_and_removed_even_when_the_run_fails(base: Path, config: SandboxConfig) -> None:
    with pytest.raises(RuntimeError, match="caller failed"):
        with workspace(base, "../../etc/odd key", config) as ws:
            assert ws.root.parent == base and ws.root.name.startswith("etc-odd-key-")
            assert (ws.root.stat().st_mode & 0o777) == 0o700
            if os.geteuid() == 0:  # a uid of the job's own, from the pool
                assert config.uid_base <= ws.uid < config.uid_base + config.uid_count and ws.uid != 65534
            assert ws.root.stat().st_uid == ws.uid
            path = ws.write_input("data.csv", iter([b"a,b\n", b"1,2\n"]))
            assert path.read_bytes() == b"a,b\n1,2\n" and (path.stat().st_mode & 0o777) == 0o400
            with pytest.raises(ValueError):
                ws.write_input("../escape", [b""])
            code = """
import os
os.makedirs("/out/locked/deeper")
open("/out/locked/deeper/f", "w").write("x")
os.symlink("/etc/shadow", "/out/shadow-link")
os.chmod("/out/locked/deeper", 0)
os.chmod("/out/locked", 0)
raise SystemExit(4)
"""
            run = run_code(config, ws, code)
            assert run.outcome.exit_code == 4
            assert ws.output_files() == []  # the symlink is not offered as an output
            with pytest.raises(OSError):
                ws.open_output("shadow-link")
            raise RuntimeError("caller failed")
    assert not ws.root.exists()
    assert Path("/etc/shadow").exists()


def test_preflight_explains_missing_bubblewrap(config: SandboxConfig) -> None:
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        sandbox_preflight(dataclasses.replace(config, bwrap="/nonexistent/bwrap"))


@pytest.mark.skipif(os.geteuid() != 0, reason="an unprivileged worker's sandbox shares its uid and permissions")
def test_preflight_names_unreadable_site_packages(base: Path, config: SandboxConfig) -> None:
    private = Path(tempfile.mkdtemp(dir=base))  # 0700, owned by root
    with pytest.raises(SandboxUnavailable, match=str(private)):
        sandbox_preflight(dataclasses.replace(config, site_packages=(str(private),)))


def test_overhead_of_an_empty_python(base: Path, config: SandboxConfig) -> None:
    backends = {"bubblewrap": BubblewrapBackend(), "unsandboxed": UnsandboxedBackend()}
    timings: dict[str, list[float]] = {name: [] for name in backends}
    with workspace(base, "overhead", config) as ws:
        for _ in range(5):
            for name, samples in timings.items():
                run = run_code(config, ws, "pass", run=backends[name].run)
                assert run.outcome.ok, run.outcome
                samples.append(run.outcome.wall_seconds)
    sandboxed, plain = (statistics.median(timings[k]) * 1000 for k in ("bubblewrap", "unsandboxed"))
    print(f"\n`python -c pass`: sandboxed {sandboxed:.1f} ms, unsandboxed {plain:.1f} ms (median of 5)")


def test_the_unsandboxed_backend_uses_host_paths(base: Path, config: SandboxConfig) -> None:
    code = "import sys; open(sys.argv[1] + '/r.txt', 'w').write(open(sys.argv[2]).read())"
    with workspace(base, "none", config) as ws:
        ws.write_input("spec.json", [b"{}"])
        assert BubblewrapBackend().paths(ws) == {"data": "/data", "out": "/out", "tmp": "/tmp"}
        assert UnsandboxedBackend().paths(ws)["out"] == str(ws.output_dir)
        events: list[dict] = []
        argv = ["python3", "-c", code, "/out", "/data/spec.json"]
        outcome = UnsandboxedBackend().run(config=config, workspace=ws, argv=argv, limits=SMALL, on_event=events.append)
        assert outcome.ok, outcome
        assert (ws.output_dir / "r.txt").read_text() == "{}"


# --------------------------------------------------------------------------------------------------- escapes


def test_no_network(run_hostile) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    tcp_port, udp_port = listener.getsockname()[1], udp.getsockname()[1]
    with listener, udp:
        run = run_hostile("network", args={"tcp": [["127.0.0.1", tcp_port]], "udp": [["127.0.0.1", udp_port]]})
        run.assert_contained()
        assert run.outcome.reason == "The runner stopped with exit status 3."
        with pytest.raises(BlockingIOError):
            listener.accept()
        with pytest.raises(BlockingIOError):
            udp.recvfrom(512)


def test_cannot_read_etc_shadow(run_hostile) -> None:
    run = run_hostile("read_shadow")
    run.assert_contained()
    assert run.outcome.exit_code == 3 and run.outcome.limit is None


def test_cannot_read_another_dataset(base: Path, config: SandboxConfig, run_hostile) -> None:
    secret = b"patient_id,diagnosis\n1,very private\n"
    with workspace(base, "other-job", config) as other:
        path = other.write_input("dataset.csv", [secret])
        os.chmod(other.root, 0o755)  # even with the folders wide open, the other job's files are not mounted
        os.chmod(other.input_dir, 0o755)
        os.chmod(path, 0o644)
        done = threading.Event()
        background = threading.Thread(
            target=run_code,
            args=(config, other, "import time; time.sleep(20)"),
            kwargs={"should_cancel": done.is_set},
        )
        background.start()
        try:
            time.sleep(0.3)  # the other sandbox is up, its /data mounted
            args = {
                "paths": [str(path), str(other.input_dir), str(other.root)],
                "secret_sha256": hashlib.sha256(secret).hexdigest(),
            }
            run = run_hostile("read_other_dataset", args=args, others_running=True)
        finally:
            done.set()
            background.join()
        assert other.uid != run.uid  # two jobs at once: two uids
        assert wait_no_processes(other.uid) == [] and wait_no_processes(run.uid) == []
    run.assert_contained()
    assert run.outcome.exit_code == 3
    assert "very private" not in run.outcome.stderr_tail + run.messages()


def test_cannot_read_settings_or_project(run_hostile) -> None:
    settings = Path(__file__).resolve().parents[3] / "config" / "settings" / "base.py"
    assert settings.exists()
    run = run_hostile("read_settings", args={"paths": [str(settings), str(settings.parents[2])]})
    run.assert_contained()
    assert run.outcome.exit_code == 3


def test_cannot_read_encryption_key(base: Path, run_hostile, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATASET_ENCRYPTION_KEY", "c2VjcmV0LWtleQ==")
    secrets_dir = Path(tempfile.mkdtemp(dir=base)) / ".local" / "secrets"
    secrets_dir.mkdir(parents=True)
    key = secrets_dir / "dataset.key"
    key.write_bytes(b"0123456789abcdef0123456789abcdef")
    for folder in (secrets_dir, secrets_dir.parent, secrets_dir.parent.parent):
        os.chmod(folder, 0o755)
    os.chmod(key, 0o644)  # world-readable on purpose: only the mount layout keeps it out
    run = run_hostile("read_encryption_key", args={"paths": [str(key), str(secrets_dir)]})
    run.assert_contained()
    assert run.outcome.exit_code == 3
    assert "0123456789abcdef" not in run.messages() + run.outcome.stderr_tail


def test_cannot_write_outside_out(base: Path, run_hostile) -> None:
    host_dir = Path(tempfile.mkdtemp(dir=base))
    os.chmod(host_dir, 0o777)  # writable by anyone on the host; unreachable from the sandbox
    usr_before = set(os.listdir("/usr"))
    seen: dict[str, object] = {}

    def check(ws: Workspace) -> None:
        seen["input"] = sorted(os.listdir(ws.input_dir))
        seen["spec"] = (ws.input_dir / "spec.json").read_bytes()

    run = run_hostile("write_outside", args={"dirs": [str(host_dir), str(base)]}, check=check)
    run.assert_contained()
    assert run.outcome.exit_code == 3
    assert list(host_dir.iterdir()) == []
    assert not [p for p in base.iterdir() if p.name.startswith("hostile-")]
    assert set(os.listdir("/usr")) == usr_before and not Path("/hostile.txt").exists()
    assert seen == {"input": ["spec.json"], "spec": b'{"algorithm": "hostile"}'}


def test_fork_bomb_is_contained(run_hostile) -> None:
    limits = dataclasses.replace(SMALL, processes=32)
    peak = [0]
    stop = threading.Event()
    samplers: list[threading.Thread] = []

    def sample(uid: int) -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], len(uid_processes(uid)))
            time.sleep(0.02)

    def before(ws: Workspace) -> None:
        samplers.append(threading.Thread(target=sample, args=(ws.uid,)))
        samplers[0].start()

    try:
        run = run_hostile("fork_bomb", limits=limits, before=before)
    finally:
        stop.set()
        for sampler in samplers:
            sampler.join()
    run.assert_contained()
    assert run.outcome.limit == "processes", run.outcome
    assert run.outcome.reason == "The job tried to run more than 32 processes or threads."
    assert run.outcome.wall_seconds < 5
    assert 0 < peak[0] <= limits.processes


def test_memory_bomb_is_contained(run_hostile) -> None:
    run = run_hostile("memory_bomb", limits=dataclasses.replace(SMALL, memory_bytes=512 << 20))
    run.assert_contained()
    assert run.outcome.limit == "memory", run.outcome
    assert run.outcome.reason == "The job ran out of memory (limit 512 MiB)."


@pytest.mark.parametrize("mode", ["bytes", "files"])
def test_filling_the_disk_is_contained(base: Path, run_hostile, mode: str) -> None:
    limits = dataclasses.replace(SMALL, disk_bytes=48 << 20, files=500)
    free_before = shutil.disk_usage(base).free
    left: list[int] = []

    def check(ws: Workspace) -> None:
        left.append(sum(p.stat().st_size for d in (ws.output_dir, ws.tmp_dir) for p in d.iterdir()))

    run = run_hostile("fill_disk", limits=limits, args={"mode": mode}, check=check)
    print(f"\nfill_disk ({mode}): {left[0] >> 20} MiB left when stopped (limit 48 MiB)")
    run.assert_contained()
    assert left[0] < limits.disk_bytes + (256 << 20)  # the watchdog's overshoot: one poll interval of writing
    assert run.outcome.limit == "disk", run.outcome
    assert run.outcome.reason.startswith("The job wrote more than 48 MiB (or more than 500 files)")
    assert run.outcome.wall_seconds < 5
    # Other work on the machine moves the free space a little; a leak would be gigabytes.
    assert shutil.disk_usage(base).free > free_before - (256 << 20)


@pytest.mark.parametrize("attack", ["sleep_forever", "outlive_timeout"])
def test_nothing_outlives_the_timeout(run_hostile, attack: str) -> None:
    run = run_hostile(attack, limits=dataclasses.replace(SMALL, wall_seconds=1.5), args={"seconds": 30})
    run.assert_contained()
    assert run.outcome.limit == "wall_clock", run.outcome
    assert run.outcome.reason == "The job exceeded its wall-clock limit of 1.5 s and was stopped."
    assert 1.5 <= run.outcome.wall_seconds < 3.5
    assert [e["event"] for e in run.events] == ["progress"]
    assert uid_processes(run.uid) == []  # run_hostile already waited for them: nothing is left to wait for
