"""What a run may release, checked by the worker before anything is published.

The sandbox's outputs are hostile until checked: a runner (or, later, a buyer's program in its place)
could ship the raw dataset under a model's name, add files of its own, or fill a JSON report with
rows. So the worker computes, from the public inputs alone (the algorithm, the normalised
parameters, the declared schema and the public row count), what the run may release
(``release_expected``), and accepts only that:

- the artifacts the algorithm declares (``ARTIFACTS``: name, kind, format), all of them and nothing
  else, each under the kind and description the worker gives it (never the runner's words);
- safetensors: exactly the tensors ``layers.{i}.weight`` [out, in] and ``layers.{i}.bias`` [out]
  (float32) of the architecture the parameters define, the metadata the runner writes for it, and
  a size of 8 + header + the tensors' bytes;
- ONNX (parsed with ``onnx``): the same weights byte for byte, the output head's few constants, the
  runner's operators only, and a size of the weights plus a small fixed allowance;
- JSON (manifest, model card, statistics): strict parsing (no NaN or Infinity, no duplicate keys),
  the exact key sets, finite numbers, and string and list lengths bounded by the parameters (the
  curves have at most one point per epoch or accountant step, the metrics are named);
- Markdown: UTF-8 text without control characters, under a size derived from the algorithm
  (proportional to the columns, features and classes the report describes).

There are no images among the declared artifacts. A refusal raises ``OutputRejected`` with a
sentence for the operators' log; the job then fails for ``output_rejected`` (see
``compute_to_data.failures``)."""

from __future__ import annotations

import hashlib
import json
import math
import struct
import unicodedata
from dataclasses import dataclass, field
from typing import IO, Any

from compute_to_data.runner.params import ALGORITHMS, column_bounds_seconds, schema_columns

MANIFEST = "manifest.json"


class OutputRejected(Exception):
    """What the run wrote is not what its algorithm releases (the message is for operators)."""


@dataclass(frozen=True)
class Artifact:
    name: str
    kind: str
    format: str  # "safetensors" | "onnx" | "json" | "markdown"
    description: str


# What each kind of algorithm releases, in the order the worker checks and stores it (the weights
# before the ONNX model that must carry the same ones).
ARTIFACTS: dict[str, tuple[Artifact, ...]] = {
    "model": (
        Artifact("model.safetensors", "weights", "safetensors", "Model weights (safetensors), layers.{i}.weight/bias."),
        Artifact("model.onnx", "onnx", "onnx", "ONNX model: preprocessed features in, {output} out."),
        Artifact("model_card.json", "model_card", "json", "Model card with the full preprocessing spec (JSON)."),
        Artifact("model_card.md", "model_card", "markdown", "Model card (Markdown)."),
    ),
    "statistics": (
        Artifact("statistics.json", "statistics", "json", "DP statistics per column (JSON)."),
        Artifact("statistics.md", "report", "markdown", "DP statistics per column (Markdown)."),
    ),
}
MANIFEST_ARTIFACT = Artifact(MANIFEST, "manifest", "json", "Accounting, metrics and curves (JSON).")

# Metric names the runner releases (statistics: "<column>.count" and "<column>.mean").
MODEL_METRICS = frozenset(
    {
        "dp_accuracy",
        "dp_loss",
        "dp_mse_scaled",
        "dp_rmse",
        "eval_accuracy",
        "eval_log_loss",
        "eval_mae",
        "eval_majority_baseline",
        "eval_mse",
        "eval_r2",
        "eval_rmse",
        "eval_rows",
    }
)
METRIC_KEYS = frozenset({"name", "value", "source", "description", "evaluated_on", "noise_std"})
CURVE_KEYS = frozenset({"epoch", "step", "epsilon", "loss", "accuracy"})
# Epsilon-curve points besides the origin (accounting.curve_points: at most 199).
MAX_CURVE_POINTS = 200
MAX_STRING = 400
MAX_DEPTH = 6
MODEL_MANIFEST_KEYS = frozenset(
    {
        "algorithm",
        "epsilon_spent",
        "epsilon_accounted",
        "epsilon",
        "delta",
        "accountant",
        "noise_multiplier",
        "sample_rate",
        "steps",
        "expected_batch_size",
        "eval_noise_multiplier",
        "eval_steps",
        "public_rows",
        "public_training_rows",
        "holdout_fraction",
        "evaluated_on",
        "parameters_sha256",
        "artifacts",
        "metrics",
        "curve",
        "epsilon_curve",
    }
)
STATISTICS_MANIFEST_KEYS = frozenset(
    {
        "algorithm",
        "epsilon_spent",
        "epsilon_accounted",
        "epsilon",
        "delta",
        "accountant",
        "rho",
        "noise_multiplier",
        "sample_rate",
        "steps",
        "public_rows",
        "parameters_sha256",
        "artifacts",
        "metrics",
        "curve",
        "epsilon_curve",
    }
)
MODEL_CARD_KEYS = frozenset(
    {
        "title",
        "algorithm",
        "summary",
        "architecture",
        "target",
        "preprocessing",
        "training",
        "privacy",
        "metrics",
        "curve",
        "dp_and_public",
        "intended_use_and_limits",
    }
)
PRIVACY_KEYS = frozenset(
    {
        "epsilon_spent",
        "epsilon_accounted",
        "epsilon_requested",
        "public_rows",
        "public_training_rows",
        "holdout_fraction",
        "evaluated_on",
        "delta",
        "accountant",
        "noise_multiplier",
        "sample_rate",
        "steps",
        "max_grad_norm",
        "evaluation",
        "eval_noise_multiplier",
        "adjacency",
    }
)
STATISTICS_KEYS = frozenset(
    {
        "algorithm",
        "epsilon_spent",
        "epsilon_accounted",
        "epsilon",
        "delta",
        "accountant",
        "accountant_requested",
        "privacy_accounting",
        "rho",
        "rho_per_query",
        "noise_multiplier",
        "queries",
        "columns",
        "notes",
    }
)
STATISTICS_COLUMN_KEYS = frozenset(
    {"name", "type", "skipped", "bounds", "count", "sum", "mean", "histogram", "quantiles"}
)
ONNX_OPERATORS = frozenset({"Gemm", "Relu", "Sigmoid", "Sub", "Concat", "Softmax", "Clip", "Mul", "Add"})
# What an ONNX file may hold besides its weights: the graph's nodes, names and head constants (the
# runner's take about 400 bytes and 120 a layer).
ONNX_ALLOWANCE_BYTES = 1024
ONNX_ALLOWANCE_PER_LAYER = 192
FLOAT32_BYTES = 4


@dataclass(frozen=True)
class Release:
    """What a job's run may release, computed from public inputs only (``release_expected``)."""

    algorithm: str
    kind: str  # "classifier" | "regressor" | "statistics"
    parameters: dict[str, Any]
    columns: dict[str, dict[str, Any]]
    public_rows: int
    epsilon: float
    # The public schema's size in bytes: every name, category and bound a report may repeat.
    schema_bytes: int
    sizes: tuple[int, ...] = ()  # training: [input width, hidden..., outputs]
    classes: tuple[str, ...] = ()
    output: str = ""  # the model's output as the runner describes it

    @property
    def artifacts(self) -> tuple[Artifact, ...]:
        return ARTIFACTS["statistics" if self.kind == "statistics" else "model"]

    def description(self, artifact: Artifact) -> str:
        return artifact.description.replace("{output}", self.output)


@dataclass
class Checked:
    """What the checks so far found, for the later ones (the ONNX model against the weights)."""

    manifest: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, bytes] = field(default_factory=dict)
    documents: dict[str, Any] = field(default_factory=dict)


def release_expected(
    *, algorithm: str, parameters: dict[str, Any], schema: Any, public_rows: int, epsilon: float
) -> Release:
    """The release of a run of ``algorithm`` on ``parameters`` (normalised, as the order committed to)
    over the declared ``schema``. Raises ``OutputRejected`` when they do not describe a run."""
    spec = ALGORITHMS.get(algorithm)
    if spec is None or not isinstance(parameters, dict):
        raise OutputRejected("The job's algorithm or parameters are not a runner's.")
    try:
        columns = schema_columns(schema)
        schema_bytes = len(json.dumps(schema, ensure_ascii=False).encode())
        if spec.kind == "statistics":
            if any(name not in columns for name in parameters["columns"]):
                raise KeyError("columns")
            return Release(algorithm, spec.kind, parameters, columns, public_rows, epsilon, schema_bytes)
        width = sum(_input_width(columns[name]) for name in parameters["features"])
        target = columns[parameters["target"]]
        if spec.kind == "classifier":
            classes = _classes(target)
            outputs = 1 if len(classes) == 2 else len(classes)
            output = f"probabilities [N, {len(classes)}] in class order {list(classes)}"
        else:
            classes, outputs = (), 1
            low, high = column_bounds_seconds(target)  # type: ignore[misc]
            output = f"prediction [N, 1] in the target's units ({low:g} + clip(p, 0, 1) * ({high:g} - {low:g}))"
        hidden = list(parameters.get("hidden_sizes") or []) if algorithm == "dp-mlp-classifier" else []
    except (KeyError, TypeError, ValueError) as exc:
        raise OutputRejected(f"The job's parameters do not describe a run ({type(exc).__name__}).") from None
    return Release(
        algorithm,
        spec.kind,
        parameters,
        columns,
        public_rows,
        epsilon,
        schema_bytes,
        sizes=(width, *hidden, outputs),
        classes=classes,
        output=output,
    )


def _input_width(column: dict[str, Any]) -> int:
    return len(column["categories"]) if column["type"] == "categorical" else 1


def _classes(target: dict[str, Any]) -> tuple[str, ...]:
    if target["type"] == "boolean":
        return ("false", "true")
    if target["type"] == "integer":
        return tuple(str(i) for i in range(int(target["min"]), int(target["max"]) + 1))
    return tuple(target["categories"])


def parameters_sha256(parameters: dict[str, Any]) -> str:
    """The hash the runner's manifest gives its parameters (canonical JSON)."""
    return hashlib.sha256(json.dumps(parameters, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --- reading --------------------------------------------------------------------------------------


def _read(fh: IO[bytes], limit: int, what: str) -> bytes:
    raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise OutputRejected(f"{what} is larger than its bound ({limit} bytes).")
    return raw


def _no_constant(name: str) -> Any:
    raise OutputRejected(f"JSON with {name} (not a finite number).")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise OutputRejected("JSON with a duplicate key.")
        out[key] = value
    return out


def json_strict(raw: bytes, what: str) -> Any:
    """``raw`` as JSON: UTF-8, no NaN or Infinity (nor a number too large for a float), no duplicate
    keys, nested at most ``MAX_DEPTH`` deep. Raises ``OutputRejected``."""
    try:
        document = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise OutputRejected(f"{what} is not valid JSON.") from None
    _walk(document, what, depth=0)
    return document


def _walk(value: Any, what: str, *, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise OutputRejected(f"{what} is nested too deep.")
    if isinstance(value, float) and not math.isfinite(value):
        raise OutputRejected(f"{what} has a number that is not finite.")
    if isinstance(value, str):
        _text_check(value, what)
    elif isinstance(value, list):
        for item in value:
            _walk(item, what, depth=depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _text_check(key, what)
            _walk(item, what, depth=depth + 1)


def _text_check(text: str, what: str) -> None:
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") and c not in "\n\t" for c in text):
        raise OutputRejected(f"{what} has control characters.")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _keys(document: Any, keys: frozenset[str], what: str, *, optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise OutputRejected(f"{what} is not an object.")
    missing, extra = keys - set(document), set(document) - keys - optional
    if missing or extra:
        shown = sorted(str(k)[:40] for k in (*missing, *extra))[:5]
        raise OutputRejected(f"{what} has the wrong keys ({', '.join(shown)}).")
    return document


def _numbers(document: dict[str, Any], names: tuple[str, ...], what: str, *, low: float = 0.0) -> None:
    for name in names:
        if not _is_number(document[name]) or document[name] < low:
            raise OutputRejected(f"{what}: '{name}' is not a number of at least {low:g}.")


def _ints(document: dict[str, Any], names: tuple[str, ...], what: str) -> None:
    for name in names:
        if not _is_int(document[name]) or not 0 <= document[name] <= 10**12:
            raise OutputRejected(f"{what}: '{name}' is not a count.")


def _strings(document: dict[str, Any], names: tuple[str, ...], what: str, limit: int = MAX_STRING) -> None:
    for name in names:
        if not isinstance(document[name], str) or len(document[name]) > limit:
            raise OutputRejected(f"{what}: '{name}' is not a short text.")


def _list(value: Any, limit: int, what: str) -> list[Any]:
    if not isinstance(value, list) or len(value) > limit:
        raise OutputRejected(f"{what} is not a list of at most {limit} items.")
    return value


# --- the manifest -----------------------------------------------------------------------------------


def manifest_bound(release: Release) -> int:
    return 32_768 + 300 * (_curve_limit(release) + MAX_CURVE_POINTS + _metrics_limit(release)) + 2 * len(release.output)


def _curve_limit(release: Release) -> int:
    return 0 if release.kind == "statistics" else int(release.parameters["epochs"])


def _metrics_limit(release: Release) -> int:
    return 2 * len(release.parameters["columns"]) if release.kind == "statistics" else len(MODEL_METRICS)


def manifest_check(fh: IO[bytes], release: Release, checked: Checked) -> dict[str, Any]:
    """The runner's manifest, checked: its keys, its numbers, the artifacts it lists (exactly the
    declared ones, described as the worker describes them), its metrics and curves (bounded by the
    parameters). ``epsilon_spent`` is the runner's own claim: it must lie within the reservation,
    and nothing is charged from it."""
    what = "The manifest"
    manifest = json_strict(_read(fh, manifest_bound(release), what), what)
    statistics = release.kind == "statistics"
    _keys(manifest, STATISTICS_MANIFEST_KEYS if statistics else MODEL_MANIFEST_KEYS, what)
    params = release.parameters
    if manifest["algorithm"] != release.algorithm or manifest["parameters_sha256"] != parameters_sha256(params):
        raise OutputRejected("The manifest names another algorithm or other parameters.")
    if manifest["epsilon"] != params["epsilon"] or manifest["delta"] != params["delta"]:
        raise OutputRejected("The manifest's epsilon or delta are not the job's.")
    if manifest["public_rows"] != release.public_rows:
        raise OutputRejected("The manifest's public row count is not the dataset's.")
    _numbers(manifest, ("epsilon_spent", "epsilon_accounted", "noise_multiplier", "sample_rate"), what)
    for name in ("epsilon_spent", "epsilon_accounted"):
        if manifest[name] > release.epsilon + 1e-9:
            raise OutputRejected(f"The manifest's '{name}' is above the job's reservation.")
    _ints(manifest, ("steps",), what)
    # dp-statistics always account in zCDP (the parameter names the accountant DP-SGD would use).
    if manifest["accountant"] != ("zcdp" if statistics else params["accountant"]):
        raise OutputRejected("The manifest names another accountant.")
    if statistics:
        _numbers(manifest, ("rho",), what)
    else:
        _numbers(manifest, ("eval_noise_multiplier", "holdout_fraction"), what)
        _ints(manifest, ("expected_batch_size", "eval_steps", "public_training_rows"), what)
        if manifest["evaluated_on"] not in ("holdout", "training"):
            raise OutputRejected("The manifest's 'evaluated_on' is neither holdout nor training.")
    _artifacts_check(manifest["artifacts"], release)
    _metrics_check(manifest["metrics"], release, what)
    _curve_check(manifest["curve"], release, what)
    points = _list(manifest["epsilon_curve"], MAX_CURVE_POINTS, f"{what}'s epsilon curve")
    for point in points:
        if not (isinstance(point, list) and len(point) == 2 and _is_int(point[0]) and _is_number(point[1])):
            raise OutputRejected("The manifest's epsilon curve is not a list of [step, epsilon] pairs.")
    checked.manifest = manifest
    return manifest


def _artifacts_check(entries: Any, release: Release) -> None:
    declared = {a.name: a for a in release.artifacts}
    entries = _list(entries, len(declared), "The manifest's artifact list")
    names = []
    for entry in entries:
        _keys(entry, frozenset({"name", "kind", "description"}), "An artifact of the manifest")
        artifact = declared.get(entry["name"]) if isinstance(entry["name"], str) else None
        if artifact is None:
            raise OutputRejected(
                f"The manifest lists an artifact its algorithm does not release ({str(entry['name'])[:60]!r})."
            )
        if entry["kind"] != artifact.kind or entry["description"] != release.description(artifact):
            raise OutputRejected(f"The manifest describes {artifact.name} otherwise than its algorithm does.")
        names.append(artifact.name)
    if sorted(names) != sorted(declared):
        raise OutputRejected("The manifest does not list exactly the artifacts its algorithm releases.")


def _metric_names(release: Release) -> frozenset[str]:
    if release.kind == "statistics":
        return frozenset(f"{c}.{s}" for c in release.parameters["columns"] for s in ("count", "mean"))
    return MODEL_METRICS


def _metrics_check(metrics: Any, release: Release, what: str) -> None:
    names = _metric_names(release)
    seen = set()
    for metric in _list(metrics, _metrics_limit(release), f"{what}'s metrics"):
        _keys(metric, frozenset({"name", "value", "source", "description"}), "A metric", optional=METRIC_KEYS)
        if metric["name"] not in names or metric["name"] in seen or metric["source"] not in ("dp", "public"):
            raise OutputRejected(f"{what} has a metric its algorithm does not release.")
        seen.add(metric["name"])
        if metric["value"] is not None and not _is_number(metric["value"]):
            raise OutputRejected(f"{what} has a metric whose value is not a number.")
        _strings(metric, ("description",), what)
        if "evaluated_on" in metric and metric["evaluated_on"] not in ("holdout", "training"):
            raise OutputRejected(f"{what} has a metric evaluated on something else.")
        if "noise_std" in metric and not _is_number(metric["noise_std"]):
            raise OutputRejected(f"{what} has a metric whose noise is not a number.")


def _curve_check(curve: Any, release: Release, what: str) -> None:
    for point in _list(curve, _curve_limit(release), f"{what}'s curve"):
        _keys(point, CURVE_KEYS, "A curve point")
        if not all(point[k] is None or _is_number(point[k]) for k in CURVE_KEYS):
            raise OutputRejected(f"{what}'s curve has a value that is not a number.")


# --- safetensors -------------------------------------------------------------------------------------


def _tensor_shapes(release: Release) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for i, (inputs, outputs) in enumerate(zip(release.sizes[:-1], release.sizes[1:], strict=True)):
        shapes[f"layers.{i}.weight"] = [outputs, inputs]
        shapes[f"layers.{i}.bias"] = [outputs]
    return shapes


def _architecture(release: Release) -> str:
    pairs = zip(release.sizes[:-1], release.sizes[1:], strict=True)
    return " -> ".join(f"Linear({a}, {b})" for a, b in pairs).replace(") -> Linear", ") -> ReLU -> Linear")


def weights_metadata(release: Release) -> dict[str, str]:
    """The safetensors metadata the runner writes for this architecture."""
    layers = [f"layers.{i}" for i in range(len(release.sizes) - 1)]
    return {
        "format": "pt",
        "algorithm": release.algorithm,
        "layers": json.dumps(layers),
        "architecture": _architecture(release),
        "activation": "relu between Linear layers",
        "input_width": str(release.sizes[0]),
        "output": release.output,
    }


def _header_bound(release: Release) -> int:
    """The canonical header's length (sorted keys, no spaces) padded to 8 bytes: any header with the
    same content is at least as long before padding, so this leaves no room for anything else."""
    header: dict[str, Any] = {"__metadata__": weights_metadata(release)}
    offset = 0
    for name, shape in sorted(_tensor_shapes(release).items()):
        size = math.prod(shape) * FLOAT32_BYTES
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    length = len(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    return length + (-length % 8)


def safetensors_check(fh: IO[bytes], size: int, release: Release, checked: Checked) -> None:
    """Exactly the declared architecture's float32 tensors, its metadata, and nothing else."""
    what = "The weights"
    head = fh.read(8)
    if len(head) != 8:
        raise OutputRejected(f"{what} are not a safetensors file.")
    (length,) = struct.unpack("<Q", head)
    if not 2 <= length <= _header_bound(release):
        raise OutputRejected(f"{what} have a header of the wrong size for their architecture.")
    header = _keys(json_strict(fh.read(length), what), frozenset({"__metadata__", *_tensor_shapes(release)}), what)
    if header.pop("__metadata__") != weights_metadata(release):
        raise OutputRejected(f"{what} carry other metadata than their architecture's.")
    shapes = _tensor_shapes(release)
    spans = []
    for name, entry in header.items():
        _keys(entry, frozenset({"dtype", "shape", "data_offsets"}), what)
        start, end = entry["data_offsets"] if _offsets(entry["data_offsets"]) else (-1, -1)
        if entry["dtype"] != "F32" or entry["shape"] != shapes[name] or end - start != math.prod(shapes[name]) * 4:
            raise OutputRejected(f"{what}: tensor {name} is not the architecture's.")
        spans.append((start, end, name))
    spans.sort()
    data = sum(end - start for start, end, _ in spans)
    if [s[0] for s in spans] != [0, *(s[1] for s in spans[:-1])] or size != 8 + length + data:
        raise OutputRejected(f"{what} hold other bytes than their tensors.")
    for start, end, name in spans:
        chunk = fh.read(end - start)
        if len(chunk) != end - start:
            raise OutputRejected(f"{what} end before their tensors do.")
        checked.tensors[name] = chunk


def _offsets(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_is_int(v) and v >= 0 for v in value)


# --- ONNX ------------------------------------------------------------------------------------------


def onnx_bound(release: Release) -> int:
    weights = sum(math.prod(s) for s in _tensor_shapes(release).values()) * FLOAT32_BYTES
    return weights + ONNX_ALLOWANCE_BYTES + ONNX_ALLOWANCE_PER_LAYER * len(release.sizes)


def _head_constants(release: Release) -> dict[str, list[int]]:
    if release.kind == "regressor":
        return {"target_span": [1], "target_min": [1], "zero": [], "one": []}
    return {"one": [1]} if len(release.classes) == 2 else {}


def onnx_check(fh: IO[bytes], size: int, release: Release, checked: Checked) -> None:
    """Parsed with ``onnx``: the weights already checked, byte for byte, the head's constants, the
    runner's operators and nothing besides (no metadata, functions or training info)."""
    import onnx
    from onnx import TensorProto

    what = "The ONNX model"
    raw = _read(fh, onnx_bound(release), what)
    model = onnx.ModelProto()
    try:
        model.ParseFromString(raw)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and friends: not an ONNX file
        raise OutputRejected(f"{what} is not an ONNX file.") from None
    if model.metadata_props or model.functions or model.training_info or model.doc_string or model.graph.doc_string:
        raise OutputRejected(f"{what} carries more than its graph.")
    graph = model.graph
    output = "prediction" if release.kind == "regressor" else "probabilities"
    if [i.name for i in graph.input] != ["features"] or [o.name for o in graph.output] != [output]:
        raise OutputRejected(f"{what} has other inputs or outputs than the runner's.")
    if graph.sparse_initializer or graph.value_info or any(n.op_type not in ONNX_OPERATORS for n in graph.node):
        raise OutputRejected(f"{what} uses operators the runner does not.")
    if len(graph.node) > 2 * len(release.sizes) + 3:
        raise OutputRejected(f"{what} has more nodes than its architecture.")
    shapes = {**_tensor_shapes(release), **_head_constants(release)}
    names = [t.name for t in graph.initializer]
    if sorted(names) != sorted(shapes):
        raise OutputRejected(f"{what} holds other initializers than its architecture's.")
    for tensor in graph.initializer:
        if tensor.data_type != TensorProto.FLOAT or list(tensor.dims) != shapes[tensor.name] or tensor.doc_string:
            raise OutputRejected(f"{what}: initializer {tensor.name} is not the architecture's.")
        if tensor.name in checked.tensors and tensor.raw_data != checked.tensors[tensor.name]:
            raise OutputRejected(f"{what}: initializer {tensor.name} differs from the released weights.")


# --- JSON documents and Markdown ------------------------------------------------------------------


def _category_count(release: Release, names: list[str]) -> int:
    return sum(len(release.columns[n].get("categories") or ()) for n in names)


def model_card_bound(release: Release) -> int:
    features = release.parameters["features"]
    return 65_536 + 4 * release.schema_bytes + 1024 * len(features) + 300 * (_curve_limit(release) + len(MODEL_METRICS))


def statistics_bound(release: Release) -> int:
    params = release.parameters
    columns = params["columns"]
    per_column = 2048 + 64 * (params["bins"] + 1 + 3 * len(params["quantiles"]))
    return 16_384 + 4 * release.schema_bytes + per_column * len(columns) + 64 * _category_count(release, columns)


def markdown_bound(release: Release) -> int:
    if release.kind == "statistics":
        columns = release.parameters["columns"]
        per_column = 1024 + 96 * (release.parameters["bins"] + 1 + len(release.parameters["quantiles"]))
        return 8192 + 2 * release.schema_bytes + per_column * len(columns) + 96 * _category_count(release, columns)
    features = release.parameters["features"]
    return 16_384 + 4 * release.schema_bytes + 512 * len(features) + 400 * len(MODEL_METRICS)


def model_card_check(fh: IO[bytes], release: Release, checked: Checked) -> None:
    what = "The model card"
    card = _keys(json_strict(_read(fh, model_card_bound(release), what), what), MODEL_CARD_KEYS, what)
    spec = ALGORITHMS[release.algorithm]
    if (card["algorithm"], card["title"], card["summary"]) != (release.algorithm, spec.title, spec.summary):
        raise OutputRejected(f"{what} names another algorithm.")
    layers = [
        {"name": f"layers.{i}", "in": a, "out": b}
        for i, (a, b) in enumerate(zip(release.sizes[:-1], release.sizes[1:], strict=True))
    ]
    architecture = {
        "description": _architecture(release),
        "layers": layers,
        "activation": "ReLU between Linear layers",
        "input_width": release.sizes[0],
        "output": release.output,
    }
    if card["architecture"] != architecture:
        raise OutputRejected(f"{what} describes another architecture.")
    # Metrics and curve repeat the manifest's (already checked): no room for anything else.
    if card["metrics"] != checked.manifest.get("metrics") or card["curve"] != checked.manifest.get("curve"):
        raise OutputRejected(f"{what}'s metrics or curve are not the manifest's.")
    target = card["target"]
    if not isinstance(target, dict) or target.get("column") != release.parameters["target"]:
        raise OutputRejected(f"{what} names another target.")
    if "classes" in target and target["classes"] != list(release.classes):
        raise OutputRejected(f"{what} lists other classes.")
    _keys(card["preprocessing"], frozenset({"input", "features"}), what)
    features = _list(card["preprocessing"]["features"], len(release.parameters["features"]), f"{what}'s features")
    if [f.get("column") if isinstance(f, dict) else None for f in features] != release.parameters["features"]:
        raise OutputRejected(f"{what} describes other features.")
    privacy = _keys(card["privacy"], PRIVACY_KEYS, f"{what}'s privacy")
    _numbers(privacy, ("epsilon_spent", "epsilon_accounted", "epsilon_requested", "noise_multiplier"), what)
    if not isinstance(card["training"], dict) or len(card["training"]) > 16:
        raise OutputRejected(f"{what}'s training section is not a short object.")
    for name in ("dp_and_public", "intended_use_and_limits"):
        for line in _list(card[name], 12, f"{what}'s {name}"):
            if not isinstance(line, str) or len(line) > 4 * MAX_STRING:
                raise OutputRejected(f"{what}'s {name} is not a list of sentences.")
    checked.documents["model_card.json"] = card


def statistics_check(fh: IO[bytes], release: Release, checked: Checked) -> None:
    what = "The statistics"
    doc = _keys(json_strict(_read(fh, statistics_bound(release), what), what), STATISTICS_KEYS, what)
    params = release.parameters
    if doc["algorithm"] != release.algorithm or doc["epsilon"] != params["epsilon"] or doc["delta"] != params["delta"]:
        raise OutputRejected(f"{what} name another algorithm or budget.")
    _numbers(doc, ("epsilon_spent", "epsilon_accounted", "rho", "rho_per_query", "noise_multiplier"), what)
    _ints(doc, ("queries",), what)
    columns = _list(doc["columns"], len(params["columns"]), f"{what}' columns")
    if [c.get("name") if isinstance(c, dict) else None for c in columns] != params["columns"]:
        raise OutputRejected(f"{what} describe other columns.")
    # A histogram has a count per bin or category; quantiles a value (and a scale) per level.
    longest = max(
        params["bins"] + 1,
        len(params["quantiles"]),
        *(len(c.get("categories") or ()) for c in release.columns.values()),
    )
    for column in columns:
        _keys(column, frozenset({"name", "type"}), f"{what}' column", optional=STATISTICS_COLUMN_KEYS)
        if column["type"] != release.columns[column["name"]]["type"]:
            raise OutputRejected(f"{what} give a column another type.")
        for part in column.values():
            _bounded_lists(part, longest, what)
    for line in _list(doc["notes"], 12, f"{what}' notes"):
        if not isinstance(line, str) or len(line) > 4 * MAX_STRING:
            raise OutputRejected(f"{what}' notes are not a list of sentences.")
    checked.documents["statistics.json"] = doc


def _bounded_lists(value: Any, limit: int, what: str) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _bounded_lists(item, limit, what)
    elif isinstance(value, list):
        if len(value) > limit:
            raise OutputRejected(f"{what} hold a list longer than the parameters allow.")
        if not all(v is None or _is_number(v) or (isinstance(v, str) and len(v) <= MAX_STRING) for v in value):
            raise OutputRejected(f"{what} hold a list of other things than numbers and labels.")
    elif isinstance(value, str) and len(value) > MAX_STRING:
        raise OutputRejected(f"{what} hold a text longer than {MAX_STRING} characters.")


def markdown_check(fh: IO[bytes], release: Release, name: str) -> None:
    raw = _read(fh, markdown_bound(release), f"The report {name}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise OutputRejected(f"The report {name} is not UTF-8 text.") from None
    _text_check(text, f"The report {name}")


def artifact_check(artifact: Artifact, fh: IO[bytes], size: int, release: Release, checked: Checked) -> None:
    """Check one declared artifact, read from ``fh`` (``size`` bytes, as the file system says)."""
    if artifact.format == "safetensors":
        safetensors_check(fh, size, release, checked)
    elif artifact.format == "onnx":
        onnx_check(fh, size, release, checked)
    elif artifact.name == "model_card.json":
        model_card_check(fh, release, checked)
    elif artifact.name == "statistics.json":
        statistics_check(fh, release, checked)
    else:
        markdown_check(fh, release, artifact.name)
