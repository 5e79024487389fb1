"""The runner's algorithms and their parameters: catalogue, validation and normalisation.

Pure Python on purpose: Django imports this module in web requests (to describe the algorithms and
to validate an order's parameters before any budget is reserved), and the sandboxed runner imports
it again to re-validate the spec it was handed. No torch, numpy or Django here.

``parameters_normalize`` is deterministic: the same (algorithm, parameters, schema, caps) always
give the same dict, whose sha256 an order commits to on chain. Column lists keep the buyer's order
(it is the model's input order); sets without a meaningful order (``statistics``, ``quantiles``)
are put in a canonical order.

There is deliberately no ``seed`` parameter: a buyer who chose the seed of the noise generator
could subtract the noise from the release.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeGuard

__all__ = [
    "ALGORITHMS",
    "AlgorithmSpec",
    "COLUMN_TYPES",
    "ParamSpec",
    "ParameterError",
    "algorithms_describe",
    "column_bounds_seconds",
    "datetime_to_seconds",
    "parameters_normalize",
    "schema_columns",
]

COLUMN_TYPES = ("integer", "float", "boolean", "categorical", "datetime", "text")
NUMERIC_TYPES = ("integer", "float")
# Column types a model or a statistic can use; free text has no declared bounds to scale by.
USABLE_TYPES = ("integer", "float", "boolean", "categorical", "datetime")
ACCOUNTANTS = ("rdp", "prv")
STATISTICS = ("count", "sum", "mean", "histogram", "quantiles")
MAX_FEATURES = 200
# Width of the model input after one-hot encoding; bounds the memory of the sandboxed run.
MAX_INPUT_WIDTH = 10_000
MAX_CLASSES = 1_000
# An integer target is a class per whole number between its bounds: at most this many.
MAX_INTEGER_CLASSES = 100
MAX_COLUMNS = 200


class ParameterError(ValueError):
    """A parameter (or the schema it refers to) is not acceptable.

    ``field`` names the offending parameter (None when the problem is not one parameter's);
    ``message`` is a sentence for the buyer that names the bound that was broken."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ParamSpec:
    """One parameter as the catalogue describes it. ``type`` is one of integer, float, boolean,
    choice, column, column_list, integer_list, float_list, choice_list. ``min``/``max`` bound the
    value (or each element of a list); ``min_exclusive`` makes the lower bound strict;
    ``min_items``/``max_items`` bound list lengths. ``default`` None with ``required`` False means
    the default depends on the schema or the budget (explained in ``help``)."""

    name: str
    type: str
    help: str
    default: Any = None
    required: bool = False
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    choices: tuple[str, ...] | None = None
    min_items: int | None = None
    max_items: int | None = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "default": list(self.default) if isinstance(self.default, tuple) else self.default,
            "required": self.required,
            "min": self.min,
            "max": self.max,
            "min_exclusive": self.min_exclusive,
            "choices": list(self.choices) if self.choices is not None else None,
            "help": self.help,
        }
        if self.min_items is not None:
            out["min_items"] = self.min_items
            out["max_items"] = self.max_items
        return out


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str
    title: str
    summary: str
    kind: str  # "classifier" | "regressor" | "statistics"
    releases: tuple[str, ...]
    parameters: tuple[ParamSpec, ...] = field(default_factory=tuple)

    def param(self, name: str) -> ParamSpec:
        for spec in self.parameters:
            if spec.name == name:
                return spec
        raise KeyError(name)


def _privacy_params() -> tuple[ParamSpec, ...]:
    return (
        ParamSpec(
            "epsilon",
            "float",
            "Privacy loss epsilon for this job; at most the dataset's per-job cap. Default: min(1, cap).",
            min=0.0,
            min_exclusive=True,
        ),
        ParamSpec(
            "delta",
            "float",
            "Privacy delta for this job; at most the dataset's delta. Default: the dataset's delta.",
            min=0.0,
            max=1.0,
            min_exclusive=True,
        ),
        ParamSpec(
            "accountant",
            "choice",
            "Privacy accountant (Opacus) for DP-SGD: 'rdp' (Renyi DP) or 'prv' (privacy random variables, "
            "tighter). dp-statistics always account in zCDP through OpenDP.",
            default="rdp",
            choices=ACCOUNTANTS,
        ),
    )


def _training_params(*, kind: str, learning_rate: float) -> tuple[ParamSpec, ...]:
    target_help = (
        "Column to predict: a categorical or boolean column."
        if kind == "classifier"
        else "Column to predict: an integer or float column with declared min and max."
    )
    return (
        ParamSpec("target", "column", target_help, required=True),
        ParamSpec(
            "features",
            "column_list",
            "Input columns, in this order. Default: every other integer, float, boolean, categorical and "
            "datetime column with declared bounds. Text columns cannot be used.",
            min_items=1,
            max_items=MAX_FEATURES,
        ),
        ParamSpec("epochs", "integer", "Passes over the data (expected).", default=5, min=1, max=50),
        ParamSpec(
            "batch_size",
            "integer",
            "Expected batch size; batches are drawn by Poisson sampling, as DP-SGD's accounting assumes.",
            default=256,
            min=8,
            max=4096,
        ),
        ParamSpec("learning_rate", "float", "SGD step size.", default=learning_rate, min=1e-5, max=10.0),
        ParamSpec(
            "max_grad_norm",
            "float",
            "Per-example gradient clipping bound C (L2).",
            default=1.0,
            min=0.01,
            max=100.0,
        ),
        *_privacy_params(),
        ParamSpec(
            "private_metrics",
            "boolean",
            "Release a DP loss curve and a DP accuracy (classifiers) or mean squared error (regression) on "
            "the private data; costs a small part of epsilon, so training gets slightly more noise.",
            default=True,
        ),
    )


_MODEL_RELEASES = (
    "model weights (safetensors)",
    "ONNX model",
    "model card (JSON and Markdown) with the preprocessing spec",
    "epsilon curve",
    "DP loss curve and DP accuracy or error when private_metrics is true",
)

ALGORITHMS: dict[str, AlgorithmSpec] = {
    spec.name: spec
    for spec in (
        AlgorithmSpec(
            name="dp-logistic-regression",
            title="DP logistic regression",
            summary="Logistic regression (softmax for more than two classes) trained with DP-SGD.",
            kind="classifier",
            releases=_MODEL_RELEASES,
            parameters=_training_params(kind="classifier", learning_rate=1.0),
        ),
        AlgorithmSpec(
            name="dp-mlp-classifier",
            title="DP neural network classifier",
            summary="A small fully connected network (ReLU) trained with DP-SGD.",
            kind="classifier",
            releases=_MODEL_RELEASES,
            parameters=(
                *_training_params(kind="classifier", learning_rate=0.5),
                ParamSpec(
                    "hidden_sizes",
                    "integer_list",
                    "Width of each hidden layer.",
                    default=(64, 32),
                    min=1,
                    max=1024,
                    min_items=1,
                    max_items=4,
                ),
            ),
        ),
        AlgorithmSpec(
            name="dp-linear-regression",
            title="DP linear regression",
            summary="Least-squares linear regression trained with DP-SGD on targets scaled by their declared bounds.",
            kind="regressor",
            releases=_MODEL_RELEASES,
            parameters=_training_params(kind="regressor", learning_rate=0.2),
        ),
        AlgorithmSpec(
            name="dp-statistics",
            title="DP summary statistics",
            summary="Counts, sums, means, histograms and quantiles per column, released through OpenDP "
            "(discrete Gaussian, exponential mechanism for quantiles) and accounted in zCDP.",
            kind="statistics",
            releases=("per-column DP statistics (JSON and Markdown)",),
            parameters=(
                ParamSpec(
                    "columns",
                    "column_list",
                    "Columns to describe, in this order. Default: every non-text column with declared bounds.",
                    min_items=1,
                    max_items=MAX_COLUMNS,
                ),
                ParamSpec(
                    "statistics",
                    "choice_list",
                    "Which statistics to release (each one costs budget; ones that do not apply to a column's "
                    "type are skipped for it).",
                    default=STATISTICS,
                    choices=STATISTICS,
                    min_items=1,
                    max_items=len(STATISTICS),
                ),
                ParamSpec(
                    "bins", "integer", "Histogram bins for numeric and datetime columns.", default=10, min=2, max=100
                ),
                ParamSpec(
                    "quantiles",
                    "float_list",
                    "Quantile levels, strictly between 0 and 1.",
                    default=(0.25, 0.5, 0.75),
                    min=0.0,
                    max=1.0,
                    min_exclusive=True,
                    min_items=1,
                    max_items=9,
                ),
                *_privacy_params(),
            ),
        ),
    )
}


def algorithms_describe() -> list[dict[str, Any]]:
    """The catalogue as JSON-able dicts: name, title, summary, kind, releases and parameters
    ([{name, type, default, required, min, max, min_exclusive, choices, help, (min_items, max_items)}])."""
    return [
        {
            "name": spec.name,
            "title": spec.title,
            "summary": spec.summary,
            "kind": spec.kind,
            "releases": list(spec.releases),
            "parameters": [p.describe() for p in spec.parameters],
        }
        for spec in ALGORITHMS.values()
    ]


# --- the declared schema --------------------------------------------------------------------------


def datetime_to_seconds(value: Any) -> float:
    """Seconds since the Unix epoch for an ISO date or datetime string (naive means UTC).
    Raises ValueError when the value is not one."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.strip())
    else:
        raise ValueError("not an ISO date")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def schema_columns(schema: Any) -> dict[str, dict[str, Any]]:
    """The schema's columns by name, checked for shape. Raises ParameterError(field="schema")."""
    columns = schema.get("columns") if isinstance(schema, dict) else None
    if not isinstance(columns, list) or not columns:
        raise ParameterError("schema", "The dataset's declared schema has no column list.")
    out: dict[str, dict[str, Any]] = {}
    for column in columns:
        name = column.get("name") if isinstance(column, dict) else None
        if not isinstance(name, str) or not name:
            raise ParameterError("schema", "A column of the declared schema has no name.")
        if name in out:
            raise ParameterError("schema", f"The declared schema names column '{name}' twice.")
        if column.get("type") not in COLUMN_TYPES:
            raise ParameterError("schema", f"Column '{name}' has an unknown type in the declared schema.")
        out[name] = column
    return out


def column_bounds_seconds(column: dict[str, Any]) -> tuple[float, float] | None:
    """Declared (min, max) of a numeric or datetime column as floats (datetimes in epoch seconds),
    or None when the bounds are missing, unparseable or reversed."""
    low, high = column.get("min"), column.get("max")
    try:
        if column.get("type") == "datetime":
            bounds = (datetime_to_seconds(low), datetime_to_seconds(high))
        elif _is_number(low) and _is_number(high):
            bounds = (float(low), float(high))
        else:
            return None
    except (ValueError, TypeError, OverflowError):
        return None
    return bounds if bounds[0] <= bounds[1] else None


def _categories(column: dict[str, Any]) -> list[str] | None:
    cats = column.get("categories")
    if not isinstance(cats, list) or not cats or not all(isinstance(c, str) for c in cats):
        return None
    return cats if len(set(cats)) == len(cats) else None


def _column_unusable_reason(column: dict[str, Any]) -> str | None:
    """Why a column cannot be a model input or a statistic (None when it can)."""
    name, kind = column["name"], column["type"]
    if kind == "text":
        return (
            f"Column '{name}' is free text, which cannot be used "
            "(only integer, float, boolean, categorical and datetime)."
        )
    if kind in (*NUMERIC_TYPES, "datetime") and column_bounds_seconds(column) is None:
        return f"Column '{name}' has no valid declared min and max (min <= max), which scaling needs."
    if kind == "categorical" and _categories(column) is None:
        return f"Column '{name}' has no declared list of distinct categories."
    return None


def _input_width(column: dict[str, Any]) -> int:
    return len(_categories(column) or ()) if column["type"] == "categorical" else 1


# --- value checks -----------------------------------------------------------------------------


def _check_int(spec: ParamSpec, value: Any) -> int:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ParameterError(spec.name, f"'{spec.name}' must be an integer.")
    if spec.min is not None and value < spec.min:
        raise ParameterError(spec.name, f"'{spec.name}' must be at least {spec.min:g}.")
    if spec.max is not None and value > spec.max:
        raise ParameterError(spec.name, f"'{spec.name}' must be at most {spec.max:g}.")
    return int(value)


def _check_float(spec: ParamSpec, value: Any, *, high: float | None = None, high_label: str = "") -> float:
    if not _is_number(value):
        raise ParameterError(spec.name, f"'{spec.name}' must be a finite number.")
    value = float(value)
    if spec.min is not None:
        if spec.min_exclusive and value <= spec.min:
            raise ParameterError(spec.name, f"'{spec.name}' must be greater than {spec.min:g}.")
        if not spec.min_exclusive and value < spec.min:
            raise ParameterError(spec.name, f"'{spec.name}' must be at least {spec.min:g}.")
    upper = spec.max if high is None else high
    if upper is not None and value > upper:
        raise ParameterError(spec.name, f"'{spec.name}' must be at most {upper:g}{high_label}.")
    if spec.name == "delta" and value >= 1.0:
        raise ParameterError(spec.name, "'delta' must be less than 1.")
    return value


def _check_bool(spec: ParamSpec, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(spec.name, f"'{spec.name}' must be true or false.")
    return value


def _check_choice(spec: ParamSpec, value: Any) -> str:
    if not isinstance(value, str) or value not in (spec.choices or ()):
        raise ParameterError(spec.name, f"'{spec.name}' must be one of: {', '.join(spec.choices or ())}.")
    return value


def _check_list(spec: ParamSpec, value: Any) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ParameterError(spec.name, f"'{spec.name}' must be a list.")
    if spec.min_items is not None and len(value) < spec.min_items:
        raise ParameterError(spec.name, f"'{spec.name}' must have at least {spec.min_items} item(s).")
    if spec.max_items is not None and len(value) > spec.max_items:
        raise ParameterError(spec.name, f"'{spec.name}' must have at most {spec.max_items} items.")
    return list(value)


def _check_column_list(spec: ParamSpec, value: Any, columns: dict[str, dict[str, Any]]) -> list[str]:
    names = _check_list(spec, value)
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str):
            raise ParameterError(spec.name, f"'{spec.name}' must be a list of column names.")
        if name not in columns:
            raise ParameterError(spec.name, f"'{spec.name}' names column '{name}', which is not in the schema.")
        if name in seen:
            raise ParameterError(spec.name, f"'{spec.name}' names column '{name}' twice.")
        seen.add(name)
        reason = _column_unusable_reason(columns[name])
        if reason:
            raise ParameterError(spec.name, reason)
    return names


def _default_columns(columns: dict[str, dict[str, Any]], exclude: str | None = None) -> list[str]:
    return [n for n, c in columns.items() if n != exclude and _column_unusable_reason(c) is None]


# --- normalisation ----------------------------------------------------------------------------


def _budget_caps(epsilon_max: Any, delta_max: Any) -> tuple[float, float]:
    if not _is_number(epsilon_max) or epsilon_max <= 0:
        raise ParameterError("epsilon", "This dataset has no privacy budget left for a job (epsilon cap is 0).")
    if not _is_number(delta_max) or not 0 < delta_max < 1:
        raise ParameterError("delta", "This dataset's delta cap is not a number between 0 and 1.")
    return float(epsilon_max), float(delta_max)


def _normalize_privacy(
    algo: AlgorithmSpec, given: dict[str, Any], epsilon_max: float, delta_max: float
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    eps_spec, delta_spec = algo.param("epsilon"), algo.param("delta")
    if given.get("epsilon") is None:
        out["epsilon"] = float(min(1.0, epsilon_max))
    else:
        out["epsilon"] = _check_float(eps_spec, given["epsilon"], high=epsilon_max, high_label=" (the dataset's cap)")
    if given.get("delta") is None:
        out["delta"] = float(delta_max)
    else:
        out["delta"] = _check_float(delta_spec, given["delta"], high=delta_max, high_label=" (the dataset's delta)")
    out["accountant"] = _check_choice(algo.param("accountant"), given.get("accountant", "rdp"))
    return out


# Opacus's default RDP orders; the RDP accountant cannot certify an epsilon below the limit they
# give as the noise grows without bound (its conversion term), whatever the noise.
_RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
# Share of epsilon the training steps get when private metrics are on (see accounting.py).
_TRAINING_SHARE_WITH_METRICS = 0.9
_RDP_MARGIN = 0.02


def rdp_epsilon_floor(delta: float) -> float:
    """The smallest epsilon the RDP accountant can certify at ``delta`` with Opacus's orders."""
    return min(-(math.log(delta) + math.log(a)) / (a - 1) + math.log((a - 1) / a) for a in _RDP_ORDERS)


def _check_certifiable(algo: AlgorithmSpec, out: dict[str, Any]) -> None:
    """Refuse before anything is paid an epsilon the RDP accountant cannot reach (the runner would
    fail after reading the data, and the budget would be spent for nothing)."""
    if out.get("accountant") != "rdp":
        return
    share = _TRAINING_SHARE_WITH_METRICS if algo.kind != "statistics" and out.get("private_metrics") else 1.0
    lowest = (rdp_epsilon_floor(out["delta"]) + _RDP_MARGIN) / share
    if out["epsilon"] < lowest:
        least = math.ceil(lowest * 1000) / 1000
        raise ParameterError(
            "epsilon",
            f"With the 'rdp' accountant and delta {out['delta']:g}, epsilon must be at least {least}"
            + (" (with private metrics on)" if share < 1 else "")
            + "; choose the 'prv' accountant for a smaller epsilon.",
        )


def _normalize_training(
    algo: AlgorithmSpec, given: dict[str, Any], columns: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    target = given.get("target")
    if target is None:
        raise ParameterError("target", "'target' is required: the column to predict.")
    if not isinstance(target, str) or target not in columns:
        raise ParameterError("target", "'target' must name a column of the schema.")
    tcol = columns[target]
    if algo.kind == "classifier":
        if tcol["type"] not in ("categorical", "boolean", "integer"):
            raise ParameterError(
                "target", f"'target' must be a categorical, boolean or integer column for {algo.name}."
            )
        if tcol["type"] == "integer":
            # Each whole number between the declared bounds is a class (e.g. a 0/1 label).
            low, high = tcol.get("min"), tcol.get("max")
            if not (_is_number(low) and _is_number(high)) or not 2 <= int(high) - int(low) + 1 <= MAX_INTEGER_CLASSES:
                raise ParameterError(
                    "target",
                    f"An integer 'target' needs declared bounds spanning 2 to {MAX_INTEGER_CLASSES} values "
                    "(one class each).",
                )
        if tcol["type"] == "categorical":
            cats = _categories(tcol)
            if cats is None or len(cats) < 2:
                raise ParameterError("target", "'target' must declare at least 2 distinct categories.")
            if len(cats) > MAX_CLASSES:
                raise ParameterError("target", f"'target' may have at most {MAX_CLASSES} categories.")
    else:
        if tcol["type"] not in NUMERIC_TYPES:
            raise ParameterError("target", f"'target' must be an integer or float column for {algo.name}.")
        bounds = column_bounds_seconds(tcol)
        if bounds is None or bounds[0] >= bounds[1]:
            raise ParameterError("target", "'target' must declare a min and a max with min < max.")

    out: dict[str, Any] = {"target": target}
    fspec = algo.param("features")
    if given.get("features") is None:
        features = _default_columns(columns, exclude=target)
        if not features:
            raise ParameterError("features", "The schema has no usable feature column besides the target.")
        if len(features) > MAX_FEATURES:
            raise ParameterError(
                "features", f"The schema has more than {MAX_FEATURES} usable columns: choose at most {MAX_FEATURES}."
            )
    else:
        features = _check_column_list(fspec, given["features"], columns)
        if target in features:
            raise ParameterError("features", "'features' must not include the target column.")
    width = sum(_input_width(columns[f]) for f in features)
    if width > MAX_INPUT_WIDTH:
        raise ParameterError(
            "features", f"The features expand to {width} inputs after one-hot encoding; the limit is {MAX_INPUT_WIDTH}."
        )
    out["features"] = features
    out["epochs"] = _check_int(algo.param("epochs"), given.get("epochs", algo.param("epochs").default))
    out["batch_size"] = _check_int(algo.param("batch_size"), given.get("batch_size", algo.param("batch_size").default))
    for name in ("learning_rate", "max_grad_norm"):
        out[name] = _check_float(algo.param(name), given.get(name, algo.param(name).default))
    out["private_metrics"] = _check_bool(
        algo.param("private_metrics"), given.get("private_metrics", algo.param("private_metrics").default)
    )
    if algo.name == "dp-mlp-classifier":
        hspec = algo.param("hidden_sizes")
        sizes = _check_list(hspec, given.get("hidden_sizes", list(hspec.default)))
        out["hidden_sizes"] = [_check_int(hspec, s) for s in sizes]
    return out


def _normalize_statistics(
    algo: AlgorithmSpec, given: dict[str, Any], columns: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cspec = algo.param("columns")
    if given.get("columns") is None:
        chosen = _default_columns(columns)
        if not chosen:
            raise ParameterError("columns", "The schema has no column with declared bounds to describe.")
        if len(chosen) > MAX_COLUMNS:
            raise ParameterError("columns", f"The schema has more than {MAX_COLUMNS} usable columns: choose some.")
    else:
        chosen = _check_column_list(cspec, given["columns"], columns)
    out["columns"] = chosen
    sspec = algo.param("statistics")
    stats = _check_list(sspec, given.get("statistics", list(STATISTICS)))
    for name in stats:
        _check_choice(sspec, name)
    if len(set(stats)) != len(stats):
        raise ParameterError("statistics", "'statistics' lists a statistic twice.")
    out["statistics"] = [s for s in STATISTICS if s in stats]
    out["bins"] = _check_int(algo.param("bins"), given.get("bins", algo.param("bins").default))
    qspec = algo.param("quantiles")
    levels = _check_list(qspec, given.get("quantiles", list(qspec.default)))
    checked = []
    for level in levels:
        if not _is_number(level) or not 0 < level < 1:
            raise ParameterError("quantiles", "'quantiles' must be numbers strictly between 0 and 1.")
        checked.append(float(level))
    if len(set(checked)) != len(checked):
        raise ParameterError("quantiles", "'quantiles' lists a level twice.")
    out["quantiles"] = sorted(checked)
    return out


def parameters_normalize(
    algorithm: str, parameters: dict[str, Any], *, schema: dict[str, Any], epsilon_max: float, delta_max: float
) -> dict[str, Any]:
    """Validate ``parameters`` for ``algorithm`` against the dataset's declared ``schema`` and the
    budget caps, fill the defaults, and return the canonical JSON-able dict (ints as int, floats as
    float, keys sorted). Raises ParameterError naming the field and the broken bound. Pure and
    deterministic."""
    algo = ALGORITHMS.get(algorithm) if isinstance(algorithm, str) else None
    if algo is None:
        raise ParameterError("algorithm", f"Unknown algorithm; choose one of: {', '.join(ALGORITHMS)}.")
    if not isinstance(parameters, dict):
        raise ParameterError(None, "Parameters must be a JSON object.")
    known = {p.name for p in algo.parameters}
    for name in parameters:
        if name not in known:
            shown = name if isinstance(name, str) and len(name) <= 60 else "(unnamed)"
            raise ParameterError(
                shown, f"Unknown parameter '{shown}' for {algo.name}; allowed: {', '.join(sorted(known))}."
            )
    # An explicit null means "the default", like leaving the parameter out.
    parameters = {k: v for k, v in parameters.items() if v is not None}
    epsilon_max, delta_max = _budget_caps(epsilon_max, delta_max)
    columns = schema_columns(schema)
    if algo.kind == "statistics":
        out = _normalize_statistics(algo, parameters, columns)
    else:
        out = _normalize_training(algo, parameters, columns)
    out.update(_normalize_privacy(algo, parameters, epsilon_max, delta_max))
    _check_certifiable(algo, out)
    return dict(sorted(out.items()))
