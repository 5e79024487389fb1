"""An embedded anvil node: the binary from ``node_modules`` (``npm ci``), on a loopback port.

    with AnvilNode(state_path=Path(".local/chain/anvil-state.json")) as node:
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))

With ``state_path`` anvil loads the chain from that file on start and dumps it there on a clean
stop (SIGTERM), so the chain survives a restart. No Django here: the launcher, tests and benchmarks
all use it."""

from __future__ import annotations

import collections
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from chain.faucet import DEFAULT_MNEMONIC

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_CHAIN_ID = 31337

_PLATFORM_PACKAGES = {
    ("linux", "x86_64"): "anvil-linux-amd64",
    ("linux", "amd64"): "anvil-linux-amd64",
    ("linux", "aarch64"): "anvil-linux-arm64",
    ("linux", "arm64"): "anvil-linux-arm64",
    ("darwin", "x86_64"): "anvil-darwin-amd64",
    ("darwin", "arm64"): "anvil-darwin-arm64",
    ("windows", "amd64"): "anvil-win32-amd64",
}
_LISTENING = re.compile(r"Listening on ([0-9.]+):(\d+)")


class AnvilError(RuntimeError):
    """anvil is missing, did not start, or stopped answering."""


def anvil_binary(repo_root: Path = REPO_ROOT) -> Path:
    """The anvil binary installed by ``npm ci`` (package ``@foundry-rs/anvil``), or ``ANVIL_BINARY``."""
    override = os.environ.get("ANVIL_BINARY")
    if override:
        return Path(override)
    system, machine = platform.system().lower(), platform.machine().lower()
    package = _PLATFORM_PACKAGES.get((system, machine))
    exe = "anvil.exe" if system == "windows" else "anvil"
    if package:
        candidate = repo_root / "node_modules" / "@foundry-rs" / package / "bin" / exe
        if candidate.exists():
            return candidate
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise AnvilError(
        f"anvil not found (looked in node_modules/@foundry-rs/{package or '<platform>'}/bin and on PATH): "
        "run `npm ci` in the repository root"
    )


class AnvilNode:
    """One anvil process. ``start()`` returns once the RPC answers ``eth_chainId``; ``stop()`` sends
    SIGTERM (anvil dumps ``state_path`` then) and waits. Usable as a context manager.

    ``port=None`` lets the OS pick a free loopback port (anvil ``--port 0``); ``rpc_url`` is set
    after start. ``state_interval`` (seconds) also dumps the state periodically; ``block_time``
    (seconds) mines on an interval instead of one block per transaction."""

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        chain_id: int = DEFAULT_CHAIN_ID,
        mnemonic: str = DEFAULT_MNEMONIC,
        accounts: int = 10,
        balance_ether: int = 10_000,
        state_path: Path | str | None = None,
        state_interval: int | None = None,
        block_time: float | None = None,
        extra_args: tuple[str, ...] = (),
        binary: Path | str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.chain_id = chain_id
        self.mnemonic = mnemonic
        self.accounts = accounts
        self.balance_ether = balance_ether
        self.state_path = Path(state_path) if state_path is not None else None
        self.state_interval = state_interval
        self.block_time = block_time
        self.extra_args = tuple(extra_args)
        self.binary = Path(binary) if binary is not None else None
        self.startup_timeout = startup_timeout
        self.rpc_url: str | None = None
        self._process: subprocess.Popen[str] | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=200)
        self._listening = threading.Event()
        self._bound = False
        self._reader: threading.Thread | None = None

    # ----- lifecycle -----

    def command(self) -> list[str]:
        binary = self.binary or anvil_binary()
        cmd = [
            str(binary),
            "--host",
            self.host,
            "--port",
            str(self.port if self.port is not None else 0),
            "--chain-id",
            str(self.chain_id),
            "--mnemonic",
            self.mnemonic,
            "--accounts",
            str(self.accounts),
            "--balance",
            str(self.balance_ether),
        ]
        if self.state_path is not None:
            cmd += ["--state", str(self.state_path)]
            if self.state_interval is not None:
                # Also dump every N seconds, so a crash (no SIGTERM) loses at most that much.
                cmd += ["--state-interval", str(self.state_interval)]
        if self.block_time is not None:
            cmd += ["--block-time", str(self.block_time)]
        cmd += list(self.extra_args)
        return cmd

    def start(self) -> AnvilNode:
        if self.running:
            return self
        if self.state_path is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self._output.clear()
        self._listening.clear()
        self._bound = False
        self._process = process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read_output, name="anvil-output", daemon=True)
        self._reader.start()
        try:
            self._wait_until_ready(process)
        except BaseException:
            self.stop()
            raise
        return self

    def _read_output(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        for line in process.stdout:
            self._output.append(line.rstrip("\n"))
            if not self._listening.is_set():
                match = _LISTENING.search(line)
                if match:
                    self.port = int(match.group(2))
                    self._bound = True
                    self._listening.set()
        self._listening.set()  # the process ended: wake the waiter

    def _wait_until_ready(self, process: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        if not self._listening.wait(timeout=self.startup_timeout):
            raise AnvilError(f"anvil did not start within {self.startup_timeout:.0f} s: {self.output_tail()}")
        if not self._bound:
            # The output ended without "Listening on": the process is exiting.
            try:
                returncode = process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                returncode = None
            raise AnvilError(f"anvil did not start (exit status {returncode}): {self.output_tail()}")
        self.rpc_url = f"http://{self.host}:{self.port}"
        while time.monotonic() < deadline:
            if not self.running:
                raise AnvilError(f"anvil exited with {process.returncode}: {self.output_tail()}")
            try:
                chain_id = int(self.rpc("eth_chainId"), 16)
            except (OSError, AnvilError):
                time.sleep(0.05)
                continue
            if chain_id != self.chain_id:
                raise AnvilError(f"anvil answers chain id {chain_id}, expected {self.chain_id}")
            return
        raise AnvilError(f"anvil did not answer on {self.rpc_url} within {self.startup_timeout:.0f} s")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM and wait (anvil writes ``state_path`` on the way out); SIGKILL after ``timeout``."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(timeout=2)
        if process.stdout is not None:
            process.stdout.close()
        self._process = None
        self.rpc_url = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def output_tail(self, lines: int = 20) -> str:
        return "\n".join(list(self._output)[-lines:])

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ----- raw JSON-RPC (no web3 needed) -----

    def rpc(self, method: str, params: list | None = None, timeout: float = 5.0):
        """Call one JSON-RPC method and return its ``result``; AnvilError on an RPC error."""
        if self.rpc_url is None:
            raise AnvilError("anvil is not running")
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
        # The URL is the http:// loopback address built in start(), never user input.
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(self.rpc_url, data=body, headers=headers)  # noqa: S310
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            reply = json.loads(response.read())
        if "error" in reply:
            raise AnvilError(f"{method}: {reply['error']}")
        return reply["result"]

    def snapshot(self) -> str:
        """``evm_snapshot``: an id to ``revert`` to. A snapshot is used up by its revert."""
        return self.rpc("evm_snapshot")

    def revert(self, snapshot_id: str) -> bool:
        return bool(self.rpc("evm_revert", [snapshot_id]))

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", [hex(blocks)])
