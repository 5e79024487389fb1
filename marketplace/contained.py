"""Running a parser over an uploaded file in a child process under memory, CPU and time limits.

A small file can ask a parser for far more than it holds: a 215 KB Parquet file expands to 3 GB
(a highly compressible or dictionary-encoded column), and the footer's sizes need not be honest.
So the code that reads an upload runs in a forked child with the compute sandbox's rlimits
(``common.limits.Limits``, the sandbox's own): ``RLIMIT_AS`` (counted from what the parent already has
mapped, so it bounds what parsing adds), ``RLIMIT_CPU``, no core dumps (a dump would put the
private data on disk), and a wall clock after which the parent kills it. The child touches no
database connection and no storage client: it gets an open file, a path, or a pipe the parent
feeds, and it answers one JSON line. Whatever it asks for, the process that serves requests or
tasks survives, and the caller gets ``UploadLimitExceeded`` with a sentence naming the limit.

The child is a plain ``fork()``: the code it runs is already imported and configured, and no
interpreter has to start for each upload."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import resource
import select
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from common.errors import DomainError, InvalidFile
from common.limits import Limits, human_bytes

logger = logging.getLogger(__name__)

# A result line longer than this is not ours (the results are schemas and counts).
MAX_RESULT_BYTES = 64 * 1024**2
FEED_CHUNK = 256 * 1024


class UploadLimitExceeded(InvalidFile):
    """Reading the file needed more memory or time than an upload check may take."""

    code = "file_limit_exceeded"


def limits_for(*, memory_bytes: int, seconds: float) -> Limits:
    return Limits(memory_bytes=memory_bytes, cpu_seconds=max(1, int(seconds)), wall_seconds=float(seconds))


def _mapped_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _limit_self(limits: Limits) -> None:
    """In the child: the sandbox's rlimits that fit a parser. RLIMIT_NPROC and RLIMIT_FSIZE are
    left alone: the parser may start threads (NPROC counts every task of the uid) and never
    writes, and a lazy import writing a .pyc must not kill it."""

    try:
        import pyarrow as pa

        # mimalloc (pyarrow's default) reserves a 1 GiB arena up front, which an address-space
        # limit refuses; the system allocator fails one allocation cleanly instead. One thread
        # each: every thread costs a stack and a malloc arena of address space.
        pa.set_memory_pool(pa.system_memory_pool())
        pa.set_cpu_count(1)
        pa.set_io_thread_count(1)
    except Exception:  # noqa: BLE001 - pyarrow missing or too old: the limits still apply
        logger.debug("Could not switch pyarrow to the system allocator", exc_info=True)
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).mallopt(-8, 1)  # M_ARENA_MAX: one malloc arena

    def lower(which: int, value: int) -> None:
        _soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, hard if which == resource.RLIMIT_CPU else value))

    lower(resource.RLIMIT_AS, _mapped_bytes() + limits.memory_bytes)
    cpu = max(1, int(limits.cpu_seconds))
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5 if hard == resource.RLIM_INFINITY else min(cpu + 5, hard)))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _is_memory_error(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        return False
    return isinstance(exc, pa.ArrowMemoryError) or "bad_alloc" in str(exc) or "Cannot allocate memory" in str(exc)


def _child(fn: Callable[..., Any], args: tuple, limits: Limits, out_fd: int) -> None:
    """Never returns: runs ``fn`` under the limits and writes one JSON line to ``out_fd``."""
    try:
        _limit_self(limits)
        # The parent's handlers (gunicorn's, Celery's) are not this process's business.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1):
            signal.signal(sig, signal.SIG_DFL)
        try:
            answer: dict[str, Any] = {"result": fn(*args)}
        except DomainError as exc:
            answer = {"domain": {"code": exc.code, "detail": exc.detail}}
        except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
            if _is_memory_error(exc):
                answer = {"limit": "memory"}
            else:
                answer = {"crash": f"{exc.__class__.__name__}: {str(exc).strip()[:300]}"}
        try:
            data = json.dumps(answer).encode() + b"\n"
        except MemoryError:
            data = b'{"limit": "memory"}\n'
        except (TypeError, ValueError) as exc:  # a result that is not JSON: our bug, not the file's
            data = json.dumps({"crash": f"result not JSON: {exc}"[:300]}).encode() + b"\n"
        view = memoryview(data)
        while view:
            view = view[os.write(out_fd, view) :]
    except BaseException:  # noqa: BLE001 - the child must never return into the parent's code
        with contextlib.suppress(BaseException):
            os.write(out_fd, b'{"limit": "memory"}\n')
    finally:
        os._exit(0)


def _feed(chunks: Iterable[bytes], fd: int, fed: list[int], failure: list[BaseException]) -> None:
    try:
        for piece in chunks:
            view = memoryview(piece)
            while view:
                view = view[os.write(fd, view[:FEED_CHUNK]) :]
            fed[0] += len(piece)
    except BrokenPipeError:
        pass  # the child stopped reading: its answer says why
    except BaseException as exc:  # noqa: BLE001 - reported by the caller (e.g. a decryption error)
        failure.append(exc)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def contained_call(
    fn: Callable[..., Any],
    *args: Any,
    limits: Limits,
    what: str,
    feed: Iterable[bytes] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Any:
    """``fn(*args)`` in a forked child under ``limits``; its JSON-able return value. With ``feed``,
    ``fn`` gets one more argument first: a readable binary stream of the fed chunks (the parent
    writes them from a thread and calls ``on_progress(bytes fed)`` from the calling thread).

    Raises the child's ``DomainError`` as ``InvalidFile`` (same code and detail),
    ``UploadLimitExceeded`` when the child ran out of memory or time (``what`` names the check in
    the message, e.g. "checking an upload"), ``InvalidFile`` with code ``unreadable_file`` when it
    failed any other way."""
    out_r, out_w = os.pipe()
    feed_r = feed_w = None
    if feed is not None:
        feed_r, feed_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which reports through the pipe
        os.close(out_r)
        if feed_w is not None:
            os.close(feed_w)
        child_args = args
        if feed_r is not None:
            child_args = (os.fdopen(feed_r, "rb", buffering=1 << 20), *args)
        _child(fn, child_args, limits, out_w)
    os.close(out_w)
    fed: list[int] = [0]
    failure: list[BaseException] = []
    feeder = None
    if feed is not None:
        assert feed_r is not None  # the feed's pipe is made above whenever there is a feed
        os.close(feed_r)
        feeder = threading.Thread(target=_feed, args=(feed, feed_w, fed, failure), daemon=True)
        feeder.start()
    deadline = time.monotonic() + limits.wall_seconds
    buffer, killed, last_fed, ended = bytearray(), False, -1, False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                killed = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                break
            ready, _, _ = select.select([out_r], [], [], min(left, 0.5))
            if on_progress is not None and fed[0] != last_fed:
                last_fed = fed[0]
                on_progress(last_fed)
            if not ready:
                continue
            piece = os.read(out_r, 1 << 16)
            if not piece:
                ended = True
                break
            buffer += piece
            if len(buffer) > MAX_RESULT_BYTES:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                buffer = bytearray()
                break
    finally:
        if not ended:
            # Stopped early (a limit, or the caller interrupted: a task's soft time limit, a
            # signal): the child must not outlive the call.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os.close(out_r)
        status, cpu_used = _reap(pid)
        if feeder is not None:
            feeder.join(timeout=5)
    if failure:
        raise failure[0]
    return _outcome(
        bytes(buffer), status, killed=killed, out_of_cpu=cpu_used >= limits.cpu_seconds, limits=limits, what=what
    )


def _reap(pid: int) -> tuple[int | None, float]:
    """The child's wait status and the CPU seconds it used."""
    try:
        _pid, status, usage = os.wait4(pid, 0)
    except ChildProcessError:  # SIGCHLD ignored by the host process: already reaped
        return None, 0.0
    return status, usage.ru_utime + usage.ru_stime


def _limit_error(kind: str, limits: Limits, what: str) -> UploadLimitExceeded:
    if kind == "memory":
        return UploadLimitExceeded(
            f"Reading the file needs more than {human_bytes(limits.memory_bytes)} of memory, the limit for "
            f"{what}: it expands far beyond its size (a Parquet file: write it with smaller row groups, "
            "plain encoding or fewer repeated long values).",
            extra={"limit": "memory", "limit_bytes": limits.memory_bytes},
        )
    seconds = f"{limits.wall_seconds:g} second{'' if limits.wall_seconds == 1 else 's'}"
    return UploadLimitExceeded(
        f"Reading the file takes longer than {seconds}, the limit for {what}.",
        extra={"limit": "time", "limit_seconds": limits.wall_seconds},
    )


def _outcome(data: bytes, status: int | None, *, killed: bool, out_of_cpu: bool, limits: Limits, what: str) -> Any:
    if killed:
        raise _limit_error("time", limits, what)
    answer = None
    line = data.split(b"\n", 1)[0]
    if line:
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
    if isinstance(answer, dict):
        if "result" in answer:
            return answer["result"]
        if isinstance(answer.get("domain"), dict):
            raise InvalidFile(str(answer["domain"].get("detail", "")), code=str(answer["domain"].get("code", "")))
        if answer.get("limit") == "memory":
            raise _limit_error("memory", limits, what)
        logger.warning("Reading an upload failed in the child: %s", answer.get("crash", "")[:300])
        raise InvalidFile("The file could not be read.", code="unreadable_file")
    if status is not None and os.WIFSIGNALED(status):
        if os.WTERMSIG(status) == signal.SIGXCPU or out_of_cpu:  # soft limit, or the hard one (SIGKILL)
            raise _limit_error("time", limits, what)
        # Not its CPU time: an allocation failure inside a C++ library ends in abort() or a fault,
        # and the kernel's OOM killer sends SIGKILL.
        raise _limit_error("memory", limits, what)
    raise InvalidFile("The file could not be read.", code="unreadable_file")
