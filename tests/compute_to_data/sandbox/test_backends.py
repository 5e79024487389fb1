"""The sandbox as data and the backend as a setting: what ``policy_for`` lets a job see and write, how the
launcher renders it, and that the unsandboxed backend is reachable only by naming it, never in production."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from compute_to_data import sandbox
from compute_to_data.sandbox.host import Resolved
from compute_to_data.sandbox.launcher import bwrap_argv
from compute_to_data.sandbox.policy import Folders, policy_for
from compute_to_data.services import execution
from tests.config.settings.support import ROOT, deploy_env

RESOLVED = Resolved(
    bwrap="/usr/bin/bwrap",
    python="/usr/bin/python3.11",
    python_prefix=None,
    site_packages=("/venv/lib/python3.11/site-packages",),
    runner_dir="/srv/app/compute_to_data/runner",
    uid=65534,
    gid=65534,
)
FOLDERS = Folders(data="/work/job-1/input", out="/work/job-1/out", tmp="/work/job-1/tmp")


def test_the_policy_binds_only_the_job_folders_writable_and_scrubs_the_environment() -> None:
    policy = policy_for(RESOLVED, FOLDERS, sandbox.Limits(shm_bytes=1 << 20), threads=3, extra_env={"X": "1"})
    assert policy.writable == ("/out", "/tmp")
    binds = {m.dest: m.source for m in policy.mounts if m.kind in ("bind", "ro-bind")}
    assert binds["/data"] == FOLDERS.data and binds["/opt/runner/dp_runner"] == RESOLVED.runner_dir
    assert binds["/opt/site"] == RESOLVED.site_packages[0]
    assert not any(dest.startswith(("/etc", "/home", "/root", "/srv", "/work")) for dest in binds)
    assert policy.namespaces >= {"net", "pid", "user", "ipc"} and not policy.nested_user_namespaces
    assert policy.env["HOME"] == "/tmp" and policy.env["OMP_NUM_THREADS"] == "3" and policy.env["X"] == "1"
    assert not any(name.startswith("DJANGO_") for name in policy.env)


def test_the_launcher_renders_the_policy_as_bubblewrap_arguments() -> None:
    policy = policy_for(RESOLVED, FOLDERS, sandbox.Limits(shm_bytes=1 << 20), threads=2)
    argv = bwrap_argv(RESOLVED.bwrap, policy, status_fd=9)
    assert argv[:3] == ["/usr/bin/bwrap", "--unshare-all", "--unshare-user"] and argv[-1] == "--"
    for flag in ("--disable-userns", "--die-with-parent", "--as-pid-1", "--clearenv", "--new-session"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL" and "--cap-add" not in argv
    writable = [argv[i + 1 : i + 3] for i, arg in enumerate(argv) if arg == "--bind"]
    assert writable == [[FOLDERS.out, "/out"], [FOLDERS.tmp, "/tmp"]]
    assert argv[argv.index("--tmpfs", argv.index("--dev")) - 1] == str(1 << 20)  # /dev/shm's size
    assert argv[-3:-1] == ["--json-status-fd", "9"]
    # The root and /dev are read-only once everything is mounted.
    assert argv.index("--remount-ro") > argv.index("/dev/shm")


def test_jobs_run_in_bubblewrap_unless_settings_name_another_backend(settings) -> None:
    assert isinstance(execution.sandbox_backend(), sandbox.BubblewrapBackend)
    settings.COMPUTE_SANDBOX_BACKEND = "unsandboxed"
    assert isinstance(execution.sandbox_backend(), sandbox.UnsandboxedBackend)
    settings.COMPUTE_SANDBOX_BACKEND = "nsjail"
    with pytest.raises(ImproperlyConfigured, match="unknown sandbox backend 'nsjail'.*bubblewrap, unsandboxed"):
        execution.sandbox_backend()


@pytest.mark.parametrize(("backend", "refused"), [("bubblewrap", False), ("unsandboxed", True), ("none", True)])
def test_production_settings_refuse_every_backend_but_bubblewrap(tmp_path, backend: str, refused: bool) -> None:
    env = deploy_env(tmp_path, COMPUTE_SANDBOX_BACKEND=backend)
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if refused:
        assert done.returncode != 0
        assert "ImproperlyConfigured" in done.stderr and "bubblewrap only" in done.stderr, done.stderr[-2000:]
    else:
        assert done.returncode == 0, done.stderr[-2000:]
