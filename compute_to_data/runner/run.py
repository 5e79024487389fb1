"""Entry point of the trusted runner: read the spec, re-validate it, run the algorithm, write the
artifacts and the manifest, and speak the stdout protocol (see ``events``).

Run inside the sandbox as ``python -m dp_runner /data/spec.json``; importable as
``compute_to_data.runner.run`` for tests (``run_spec``). Exit status 0 on success, 2 after an
error event.

Nothing that could quote or depend on private data leaves the process: errors we raise carry
our own fixed messages (codes ``invalid_parameters`` for the public spec, ``invalid_data`` for a
file that cannot be read at all or lacks a declared column); any other exception is the fixed
``internal`` message, its type name and the ``file:line`` of our code going to stderr only (for
the operators), never ``str(exc)`` and never a traceback. Log lines are fixed templates with public
values; every number in the manifest that is not marked DP is a function of the spec alone (the
public row count, the parameters, the schema), never of the private file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import IO, Any

from .errors import InvalidParameters, RunnerError
from .events import Events
from .params import ALGORITHMS, ParameterError, parameters_normalize

PACKAGE_DIR = Path(__file__).resolve().parent
MANIFEST = "manifest.json"
MAX_THREADS = 64
MAX_PUBLIC_ROWS = 10**12
MAX_HOLDOUT_FRACTION = 0.5
SPEC_KEYS = {
    "algorithm",
    "parameters",
    "schema",
    "data_file",
    "data_format",
    "eval_file",
    "threads",
    "output_dir",
    "public_rows",
    "holdout",
}
INTERNAL_MESSAGE = "Internal error in the runner."


def _holdout_check(holdout: Any, kind: str) -> dict[str, Any] | None:
    if holdout is None:
        return None
    if kind == "statistics":
        raise InvalidParameters("dp-statistics takes no holdout.")
    if not isinstance(holdout, dict) or set(holdout) != {"fraction", "key"}:
        raise InvalidParameters("The spec's 'holdout' must be null or an object with 'fraction' and 'key'.")
    fraction, key = holdout["fraction"], holdout["key"]
    if not isinstance(fraction, int | float) or isinstance(fraction, bool) or not 0 <= fraction <= MAX_HOLDOUT_FRACTION:
        raise InvalidParameters(f"The holdout 'fraction' must be a number from 0 to {MAX_HOLDOUT_FRACTION:g}.")
    if not isinstance(key, str) or len(key) != 64 or any(c not in "0123456789abcdefABCDEF" for c in key):
        raise InvalidParameters("The holdout 'key' must be 64 hexadecimal characters.")
    return {"fraction": float(fraction), "key": key}


def spec_check(spec: Any) -> dict[str, Any]:
    """The spec with defaults filled (``eval_file`` None, ``threads`` 1, ``output_dir`` "/out",
    ``holdout`` None), its parameters re-validated: they must already be in normalised form.
    ``public_rows`` (the owner's declared approximate row count, an integer >= 1) is required.
    Raises InvalidParameters."""
    if not isinstance(spec, dict):
        raise InvalidParameters("The spec must be a JSON object.")
    unknown = sorted(str(k)[:40] for k in spec if k not in SPEC_KEYS)
    if unknown:
        raise InvalidParameters(f"The spec has unknown keys: {', '.join(unknown)}.")
    algorithm = spec.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise InvalidParameters(f"Unknown algorithm; choose one of: {', '.join(ALGORITHMS)}.")
    for key in ("data_file",):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise InvalidParameters(f"The spec's '{key}' must be a path.")
    if spec.get("data_format") not in ("csv", "parquet"):
        raise InvalidParameters("The spec's 'data_format' must be 'csv' or 'parquet'.")
    eval_file = spec.get("eval_file")
    if eval_file is not None and (not isinstance(eval_file, str) or not eval_file):
        raise InvalidParameters("The spec's 'eval_file' must be a path or null.")
    if eval_file is not None and ALGORITHMS[algorithm].kind == "statistics":
        raise InvalidParameters("dp-statistics takes no evaluation file.")
    threads = spec.get("threads", 1)
    if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= MAX_THREADS:
        raise InvalidParameters(f"The spec's 'threads' must be an integer from 1 to {MAX_THREADS}.")
    public_rows = spec.get("public_rows")
    if not isinstance(public_rows, int) or isinstance(public_rows, bool) or not 1 <= public_rows <= MAX_PUBLIC_ROWS:
        raise InvalidParameters("The spec's 'public_rows' must be an integer of at least 1 (the declared row count).")
    holdout = _holdout_check(spec.get("holdout"), ALGORITHMS[algorithm].kind)
    output_dir = spec.get("output_dir", "/out")
    if not isinstance(output_dir, str) or not output_dir:
        raise InvalidParameters("The spec's 'output_dir' must be a path.")
    parameters = spec.get("parameters")
    if not isinstance(parameters, dict):
        raise InvalidParameters("The spec's 'parameters' must be an object.")
    if not all(isinstance(parameters.get(k), int | float) for k in ("epsilon", "delta")):
        raise InvalidParameters("The spec's parameters must carry numeric 'epsilon' and 'delta'.")
    try:
        normalised = parameters_normalize(
            algorithm,
            parameters,
            schema=spec.get("schema"),  # type: ignore[arg-type]
            epsilon_max=parameters.get("epsilon"),  # type: ignore[arg-type]
            delta_max=parameters.get("delta"),  # type: ignore[arg-type]
        )
    except ParameterError as exc:
        raise InvalidParameters(exc.message) from None
    if normalised != parameters:
        raise InvalidParameters("The spec's parameters are not in normalised form (parameters_normalize changes them).")
    return {
        **spec,
        "parameters": normalised,
        "eval_file": eval_file,
        "threads": threads,
        "output_dir": output_dir,
        "public_rows": public_rows,
        "holdout": holdout,
    }


def _where(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of our own package in the traceback."""
    where = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        try:
            if Path(frame.filename).resolve().is_relative_to(PACKAGE_DIR):
                where = f"{Path(frame.filename).name}:{frame.lineno}"
        except (OSError, ValueError):
            continue
    return where


def _parameters_sha256(parameters: dict[str, Any]) -> str:
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _threads_limit(threads: int) -> None:
    """Keep every thread pool to ``threads``: the sandbox caps processes/threads, and the
    libraries would otherwise size their pools by the machine's cores. The environment is read
    when torch/OpenMP first load, so this runs before their import where it can."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    import pyarrow
    import torch

    pyarrow.set_cpu_count(threads)
    pyarrow.set_io_thread_count(threads)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set in this process (in-process runs, tests)
        pass


def _execute(spec: dict[str, Any], events: Events, seed: int | None) -> dict[str, Any]:
    _threads_limit(spec["threads"])
    out = Path(spec["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    algorithm = spec["algorithm"]
    if ALGORITHMS[algorithm].kind == "statistics":
        return _statistics(spec, events, out)
    from .rng import SecureRandom

    # A fresh 128-bit OS key per job (``seed`` is for tests only and is None in production).
    return _training(spec, events, SecureRandom(seed=seed), out)


def _statistics(spec: dict[str, Any], events: Events, out: Path) -> dict[str, Any]:
    from . import artifacts
    from .statistics import statistics_run

    doc = statistics_run(
        parameters=spec["parameters"],
        schema=spec["schema"],
        data_file=spec["data_file"],
        data_format=spec["data_format"],
        events=events,
    )
    events.progress(
        "writing",
        epoch=1,
        epochs=1,
        step=doc["queries"],
        steps=doc["queries"],
        epsilon=doc["epsilon_spent"],
        force=True,
    )
    artifacts.write_json(out / "statistics.json", doc)
    artifacts.write_text(out / "statistics.md", artifacts.statistics_markdown(doc))
    metrics = []
    for col in doc["columns"]:
        for key in ("count", "mean"):
            if key in col:
                metrics.append(
                    {
                        "name": f"{col['name']}.{key}",
                        "value": col[key]["value"],
                        "source": "dp",
                        "description": f"DP {key} of column '{col['name']}'.",
                    }
                )
    return {
        "algorithm": "dp-statistics",
        "epsilon_spent": spec["parameters"]["epsilon"],
        "epsilon_accounted": doc["epsilon_accounted"],
        "epsilon": spec["parameters"]["epsilon"],
        "delta": spec["parameters"]["delta"],
        "accountant": doc["accountant"],
        "rho": doc["rho"],
        "noise_multiplier": doc["noise_multiplier"],
        "sample_rate": 1.0,
        "steps": doc["queries"],
        "public_rows": spec["public_rows"],
        "parameters_sha256": _parameters_sha256(spec["parameters"]),
        "artifacts": [
            {"name": "statistics.json", "kind": "statistics", "description": "DP statistics per column (JSON)."},
            {"name": "statistics.md", "kind": "report", "description": "DP statistics per column (Markdown)."},
        ],
        "metrics": metrics,
        "curve": [],
        "epsilon_curve": [[0, 0.0], [doc["queries"], doc["epsilon_spent"]]] if doc["queries"] else [[0, 0.0]],
    }


def _training(spec: dict[str, Any], events: Events, generator: Any, out: Path) -> dict[str, Any]:
    from . import artifacts
    from .train import train

    params = spec["parameters"]
    algorithm = spec["algorithm"]
    result = train(
        algorithm=algorithm,
        parameters=params,
        schema=spec["schema"],
        data_file=spec["data_file"],
        data_format=spec["data_format"],
        eval_file=spec["eval_file"],
        events=events,
        generator=generator,
        public_rows=spec["public_rows"],
        holdout=spec["holdout"],
    )
    del generator
    plan = result.plan
    events.progress(
        "writing",
        epoch=plan.epochs,
        epochs=plan.epochs,
        step=plan.steps,
        steps=plan.steps,
        epsilon=params["epsilon"],
        force=True,
    )
    card = model_card(algorithm, params, result)
    layers = artifacts.layer_names(result.model)
    artifacts.weights_write(
        out / "model.safetensors",
        result.model,
        {
            "format": "pt",
            "algorithm": algorithm,
            "layers": json.dumps(layers),
            "architecture": card["architecture"]["description"],
            "activation": "relu between Linear layers",
            "input_width": str(card["architecture"]["input_width"]),
            "output": card["architecture"]["output"],
        },
    )
    proto = artifacts.onnx_build(
        result.model,
        kind=result.kind,
        classes=len(result.target.classes),
        target_low=result.target.low,
        target_high=result.target.high,
    )
    artifacts.onnx_write(out / "model.onnx", proto)
    artifacts.write_json(out / "model_card.json", card)
    artifacts.write_text(out / "model_card.md", artifacts.model_card_markdown(card))
    return {
        "algorithm": algorithm,
        "epsilon_spent": params["epsilon"],
        "epsilon_accounted": result.epsilon_accounted,
        "epsilon": params["epsilon"],
        "delta": params["delta"],
        "accountant": params["accountant"],
        "noise_multiplier": plan.noise_multiplier,
        "sample_rate": plan.sample_rate,
        "steps": plan.steps,
        "expected_batch_size": plan.expected_batch_size,
        "eval_noise_multiplier": plan.eval_noise_multiplier,
        "eval_steps": plan.eval_steps,
        "public_rows": spec["public_rows"],
        "public_training_rows": result.public_train_rows,
        "holdout_fraction": result.holdout_fraction,
        "evaluated_on": result.evaluated_on,
        "parameters_sha256": _parameters_sha256(params),
        "artifacts": [
            {
                "name": "model.safetensors",
                "kind": "weights",
                "description": "Model weights (safetensors), layers.{i}.weight/bias.",
            },
            {
                "name": "model.onnx",
                "kind": "onnx",
                "description": f"ONNX model: preprocessed features in, {card['architecture']['output']} out.",
            },
            {
                "name": "model_card.json",
                "kind": "model_card",
                "description": "Model card with the full preprocessing spec (JSON).",
            },
            {"name": "model_card.md", "kind": "model_card", "description": "Model card (Markdown)."},
        ],
        "metrics": result.metrics,
        "curve": result.curve,
        "epsilon_curve": result.epsilon_curve,
    }


def model_card(algorithm: str, params: dict[str, Any], result: Any) -> dict[str, Any]:
    from .artifacts import layer_names
    from .fastdp import linear_layers
    from .preprocess import input_width

    spec = ALGORITHMS[algorithm]
    layers = linear_layers(result.model)
    sizes = [layers[0].in_features, *(layer.out_features for layer in layers)]
    classes = list(result.target.classes)
    if result.kind == "regressor":
        low, high = result.target.low, result.target.high
        output = f"prediction [N, 1] in the target's units ({low:g} + clip(p, 0, 1) * ({high:g} - {low:g}))"
    else:
        output = f"probabilities [N, {len(classes)}] in class order {classes}"
    plan = result.plan
    training = {k: params[k] for k in ("epochs", "batch_size", "learning_rate", "max_grad_norm")}
    if "hidden_sizes" in params:
        training["hidden_sizes"] = params["hidden_sizes"]
    training["optimizer"] = "SGD (DP-SGD: exact per-example clipping, Gaussian noise, Poisson sampling)"
    training["loss"] = {"bce": "binary cross-entropy", "ce": "cross-entropy", "mse": "squared error (scaled target)"}[
        result.loss
    ]
    training["expected_batch_size"] = plan.expected_batch_size
    rows_label = (
        f"the holdout rows (a share {result.holdout_fraction:g} split inside the runner by the dataset's secret key)"
        if result.evaluated_on == "holdout"
        else "the training rows (no holdout was set)"
    )
    evaluation = (
        f"one Gaussian mechanism per epoch (sample rate 1, noise multiplier {plan.eval_noise_multiplier:.4g}; "
        f"noise std {result.eval_noise_std:.4g} on each released sum) over {rows_label}"
        if plan.eval_steps
        else "none (private_metrics is false)"
    )
    return {
        "title": spec.title,
        "algorithm": algorithm,
        "summary": spec.summary,
        "architecture": {
            "description": " -> ".join(
                [f"Linear({a}, {b})" for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
            ).replace(") -> Linear", ") -> ReLU -> Linear"),
            "layers": [
                {"name": n, "in": layer.in_features, "out": layer.out_features}
                for n, layer in zip(layer_names(result.model), layers, strict=True)
            ],
            "activation": "ReLU between Linear layers",
            "input_width": input_width(result.features),
            "output": output,
        },
        "target": result.target.describe(),
        "preprocessing": {
            "input": "ONNX input 'features': float32 [N, input_width]; input j is made by the feature whose "
            "output_indices hold j",
            "features": [f.describe() for f in result.features],
        },
        "training": training,
        "privacy": {
            "epsilon_spent": params["epsilon"],
            "epsilon_accounted": result.epsilon_accounted,
            "epsilon_requested": params["epsilon"],
            "public_rows": result.public_rows,
            "public_training_rows": result.public_train_rows,
            "holdout_fraction": result.holdout_fraction,
            "evaluated_on": result.evaluated_on,
            "delta": params["delta"],
            "accountant": params["accountant"],
            "noise_multiplier": plan.noise_multiplier,
            "sample_rate": plan.sample_rate,
            "steps": plan.steps,
            "max_grad_norm": params["max_grad_norm"],
            "evaluation": evaluation,
            "eval_noise_multiplier": plan.eval_noise_multiplier,
            "adjacency": "add or remove one row (example-level DP); a person with several rows is protected less",
        },
        "metrics": result.metrics,
        "curve": result.curve,
        "dp_and_public": [
            f"DP: the weights, the loss/accuracy curve and every metric marked 'dp' (noisy; computed on {rows_label}).",
            "Public: the preprocessing (from the declared schema), the hyper-parameters, the noise multiplier, "
            "sample rate, steps, expected batch size and the epsilon curve (functions of public settings), and "
            "metrics marked 'public' (computed exactly on the buyer's own evaluation file).",
            "The sample rate, steps and expected batch size come from the owner's public declared approximate row "
            f"count ({result.public_rows}), never from the private file's exact row count; Poisson sampling runs "
            "over the real rows at that public rate.",
            "Rows with a missing or unusable target take the public default target; none is dropped and their "
            "number is not released.",
        ],
        "intended_use_and_limits": [
            "Built for exploration and baseline modelling on data the buyer cannot see; not validated for "
            "decisions about individuals.",
            "DP bounds what the release reveals about any one row; it does not make predictions fair or correct, "
            "and population-level patterns are revealed by design.",
            "DP noise lowers accuracy, most for small datasets, many classes and small epsilon; DP metrics are "
            "noisy estimates (see their noise std) and can be far from the truth on small data.",
            "Inputs outside the declared bounds are clipped; undeclared categories map to all zeros.",
            "Epsilon composes: every further release on the same dataset spends more of its budget.",
        ],
    }


def run_spec(
    spec: dict[str, Any] | str | Path, *, stream: IO[str], seed: int | None = None, min_interval: float = 0.2
) -> int:
    """Run one job; events go to ``stream``. Returns 0 on success, 2 after an error event.
    ``seed`` is for tests only (byte-determinism checks); production never passes it, and a fresh
    128-bit key is drawn from the OS for every job."""
    events = Events(stream, min_interval=min_interval)
    try:
        if not isinstance(spec, dict):
            try:
                spec = json.loads(Path(spec).read_text())
            except (OSError, ValueError, UnicodeDecodeError):
                raise InvalidParameters("The spec file could not be read as JSON.") from None
        checked = spec_check(spec)
        events.log(f"Running {checked['algorithm']}.")
        manifest = _execute(checked, events, seed)
        out = Path(checked["output_dir"])
        from .artifacts import write_json

        write_json(out / MANIFEST, manifest)
        events.log("Done; artifacts and manifest written.")
        return 0
    except RunnerError as exc:
        events.error(exc.code, exc.message)
        return 2
    except ParameterError as exc:
        events.error("invalid_parameters", exc.message)
        return 2
    except Exception as exc:  # noqa: BLE001 - everything else gets the fixed message
        events.error("internal", INTERNAL_MESSAGE)
        # For the operators' stderr tail only (the sandbox looks for MemoryError there); no data.
        print(f"dp_runner: {type(exc).__name__} at {_where(exc)}", file=sys.stderr, flush=True)
        return 2


def main(argv: list[str] | None = None) -> int:
    """``python -m dp_runner SPEC``: events on the real stdout; anything else that writes to file
    descriptor 1 (a library's print, a C extension) is sent to stderr so the protocol stays clean."""
    argv = sys.argv[1:] if argv is None else argv
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    warnings.simplefilter("ignore")
    if len(argv) != 1:
        Events(protocol).error("invalid_parameters", "Usage: python -m dp_runner SPEC.json")
        return 2
    return run_spec(argv[0], stream=protocol)
