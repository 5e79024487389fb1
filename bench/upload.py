"""Upload benchmark: stream a large CSV through the encrypted storage service and compare its
throughput with ``sha256sum`` on the same file (a floor: the service hashes the plaintext too).

Run from the repository root::

    .venv/bin/python bench/upload.py [--mb 500] [--keep-file]

Generates the CSV in a temporary directory, then in child processes (so the generator's memory
does not count) times ``encrypted_file_store`` and the whole ``dataset_create`` (which also
samples the file for a schema), each with its peak RSS. Uses a throw-away SQLite database and
data directory; everything is removed at the end."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import REPO_ROOT, remove_tree, report  # noqa: E402

MB = 1024 * 1024
TARGET_RATIO = 0.5
TARGET_RSS_MB = 150.0


# --- the CSV --------------------------------------------------------------------------------


def csv_generate(path: Path, size_mb: int, *, seed: int = 7) -> int:
    """Write a CSV of about ``size_mb`` MiB: a header, then a pre-built block of realistic rows
    (ids, dates, categories, integers, floats, flags) repeated, ending on a whole line."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = 100_000
    regions = np.array(["north", "south", "east", "west", "central", "north-east", "south-west"])
    plans = np.array(["basic", "standard", "premium", "business"])
    days = np.datetime64("2019-01-01") + rng.integers(0, 5 * 365, n).astype("timedelta64[D]")
    columns = [
        np.char.mod("%07d", np.arange(n)),
        np.datetime_as_string(days),
        regions[rng.integers(0, len(regions), n)],
        plans[rng.integers(0, len(plans), n)],
        np.char.mod("%d", rng.integers(18, 90, n)),
        np.char.mod("%.2f", rng.lognormal(10, 0.6, n)),
        np.char.mod("%.4f", rng.normal(0, 1, n)),
        np.char.mod("%.1f", rng.gamma(2.0, 30.0, n)),
        np.char.mod("%d", rng.poisson(3, n)),
        np.where(rng.random(n) < 0.2, "true", "false"),
    ]
    header = b"customer_id,signup_date,region,plan,age,income,score,monthly_usage_gb,support_calls,churned\n"
    lines = columns[0]
    for col in columns[1:]:
        lines = np.char.add(np.char.add(lines, ","), col)
    block = ("\n".join(lines.tolist()) + "\n").encode()
    target = size_mb * MB
    written = 0
    with open(path, "wb") as fh:
        fh.write(header)
        written += len(header)
        while written + len(block) <= target:
            fh.write(block)
            written += len(block)
        rest = target - written
        if rest > 0:
            cut = block.rfind(b"\n", 0, rest)
            if cut > 0:
                fh.write(block[: cut + 1])
                written += cut + 1
    return written


# --- child: one timed upload in a fresh process ---------------------------------------------


def _peak_rss_kb() -> int:
    """This process's peak resident set size in KiB. VmHWM first: Linux carries the parent's
    high-water mark over fork+exec into ru_maxrss, which would count the CSV generator."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_rss_reset() -> None:
    """Start the peak RSS afresh (Linux >= 4.0), so setup before the upload does not count."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def child(mode: str, path: Path | None) -> None:
    import psutil

    from bench._common import setup_django

    setup_django(database_url=None, data_dir=Path(os.environ["BENCH_UPLOAD_DATA_DIR"]))
    from marketplace.models import User
    from marketplace.services import storage
    from marketplace.services.datasets import ListingFields, dataset_create

    if mode == "prepare":  # the SQLite database and the uploading user, outside the measured children
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        User.objects.create_user(username="bench-uploader", password=None)
        print(json.dumps({}))
        return
    owner = User.objects.get(username="bench-uploader")
    baseline = psutil.Process().memory_info().rss
    _peak_rss_reset()
    with open(path, "rb") as source:
        t0 = time.perf_counter()
        if mode == "store":
            stored = storage.encrypted_file_store(source=source)
            name, sha, size = stored.name, stored.sha256, stored.size
        else:
            dataset = dataset_create(
                owner=owner,
                file=source,
                filename="customers.csv",
                fields=ListingFields(title="Bench upload", tags=["bench"]),
            )
            name, sha, size = dataset.storage_name, dataset.file_sha256, dataset.file_size
        seconds = time.perf_counter() - t0
    stored_bytes = storage.dataset_storage().size(name)
    storage.stored_file_delete(name)
    peak_kb = _peak_rss_kb()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "sha256": sha,
                "size": size,
                "stored_bytes": stored_bytes,
                "peak_rss_mb": peak_kb / 1024,
                "baseline_rss_mb": baseline / MB,
            }
        )
    )


def run_child(mode: str, path: Path | None, data_dir: Path, size: int) -> dict:
    env = dict(os.environ)
    env["BENCH_UPLOAD_DATA_DIR"] = str(data_dir)
    env["DATASET_MAX_UPLOAD_BYTES"] = str(max(size + MB, 1024**3))
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--path", str(path or "")],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"upload child ({mode}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sha256sum_seconds(path: Path, repeats: int) -> tuple[float, str]:
    best, digest = float("inf"), ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout
        best = min(best, time.perf_counter() - t0)
        digest = out.split()[0]
    return best, digest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=500, help="CSV size in MiB (default 500)")
    parser.add_argument("--repeats", type=int, default=3, help="best-of runs for sha256sum (default 3)")
    parser.add_argument("--upload-repeats", type=int, default=2, help="best-of runs per upload mode (default 2)")
    parser.add_argument("--child", choices=["prepare", "store", "create"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.path)
        return 0

    if shutil.which("sha256sum") is None:
        print("ERROR: sha256sum is not installed", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="ppdx-bench-upload-"))
    try:
        data_dir = work / "data"
        data_dir.mkdir()
        path = work / "customers.csv"
        t0 = time.perf_counter()
        size = csv_generate(path, args.mb)
        report(f"CSV generation ({size / MB:,.0f} MiB)", time.perf_counter() - t0, "s")
        mib = size / MB

        sha_s, sha_hex = sha256sum_seconds(path, args.repeats)
        sha_rate = mib / sha_s
        report("sha256sum throughput", sha_rate, "MB/s", anchor=f"best of {args.repeats}, {sha_s:.2f} s")

        run_child("prepare", None, data_dir, size)
        results = {}
        for mode in ("store", "create"):
            runs = [run_child(mode, path, data_dir, size) for _ in range(max(1, args.upload_repeats))]
            for run in runs:
                if run["sha256"] != sha_hex or run["size"] != size:
                    raise RuntimeError(f"{mode}: stored sha256/size do not match the file")
            best = min(runs, key=lambda r: r["seconds"])
            best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
            results[mode] = best

        store, create = results["store"], results["create"]
        store_rate = mib / store["seconds"]
        ratio = store_rate / sha_rate
        report(
            "upload service throughput",
            store_rate,
            "MB/s",
            target=f">= {TARGET_RATIO:.1f}x sha256sum = {TARGET_RATIO * sha_rate:.0f} MB/s",
            ok=ratio >= TARGET_RATIO,
            anchor=f"encrypted_file_store, best of {args.upload_repeats}, {store['seconds']:.2f} s",
        )
        report(
            "upload/sha256sum ratio", ratio, "", target=f">= {TARGET_RATIO:.2f}", ok=ratio >= TARGET_RATIO, fmt="{:.2f}"
        )
        report(
            "upload peak RSS",
            store["peak_rss_mb"],
            "MB",
            target=f"< {TARGET_RSS_MB:.0f} MB",
            ok=store["peak_rss_mb"] < TARGET_RSS_MB,
            anchor=f"child process, Django loaded: {store['baseline_rss_mb']:.0f} MB before the upload",
        )
        create_rate = mib / create["seconds"]
        create_ratio = create_rate / sha_rate
        report(
            "dataset_create throughput",
            create_rate,
            "MB/s",
            target=f">= {TARGET_RATIO:.1f}x sha256sum = {TARGET_RATIO * sha_rate:.0f} MB/s",
            ok=create_ratio >= TARGET_RATIO,
            anchor=f"schema sample + encrypted store + row, {create['seconds']:.2f} s; ratio {create_ratio:.2f}",
        )
        report(
            "dataset_create peak RSS",
            create["peak_rss_mb"],
            "MB",
            target=f"< {TARGET_RSS_MB:.0f} MB",
            ok=create["peak_rss_mb"] < TARGET_RSS_MB,
            anchor=f"child process, Django loaded: {create['baseline_rss_mb']:.0f} MB before the upload",
        )
        overhead = store["stored_bytes"] - size
        report(
            "ciphertext overhead",
            overhead / MB,
            "MiB",
            fmt="{:.3f}",
            anchor=f"{overhead:,} bytes: header + 16-byte tag per chunk",
        )
        return 0
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        remove_tree(work)


if __name__ == "__main__":
    sys.exit(main())
