"""What the runner writes to its output folder: weights (safetensors), the ONNX model, the model
card (JSON and Markdown), the statistics report, and the manifest the orchestrator publishes.

The ONNX graph is built with ``onnx.helper`` (no exporter, no onnxscript): Gemm and Relu per
layer, then Sigmoid (two classes, expanded to [1 - p, p]), Softmax, or (regression) a clip to the
scaled target's [0, 1] and an affine map back to the target's units. Its input ``features`` is the
preprocessed float32 matrix [N, width] described in the model card.

Every artifact is byte-deterministic given its contents, so that the on-chain result hash can be
re-checked by hashing the download: safetensors is written here (``safetensors.save_file``
serialises its metadata from a Rust HashMap, whose order changes from run to run), with keys
sorted and no timestamps; ONNX with protobuf's deterministic serialisation; JSON with sorted
keys; Markdown is a pure function of the card.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from .fastdp import linear_layers

ONNX_OPSET = 17
ONNX_IR_VERSION = 8


def json_bytes(document: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, two-space indent, no NaN, trailing newline."""
    return (json.dumps(document, indent=2, allow_nan=False, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _json_dump(path: Path, document: Any) -> None:
    path.write_bytes(json_bytes(document))


def layer_names(model: nn.Sequential) -> list[str]:
    return [f"layers.{i}" for i in range(len(linear_layers(model)))]


_SAFETENSORS_DTYPES = {np.dtype("float32"): "F32", np.dtype("float64"): "F64"}


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """The safetensors file of ``tensors`` (little-endian, C order) as bytes, deterministic: the
    header is JSON with sorted keys and no spaces, padded with spaces to 8 bytes as the format
    requires; tensor data follow in sorted-name order."""
    header: dict[str, Any] = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    chunks, offset = [], 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        dtype = _SAFETENSORS_DTYPES[array.dtype]
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes(order="C")
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks)


def weights_write(path: Path, model: nn.Sequential, metadata: dict[str, str]) -> None:
    """safetensors file with ``layers.{i}.weight`` [out, in] and ``layers.{i}.bias`` [out]."""
    tensors = {}
    for name, layer in zip(layer_names(model), linear_layers(model), strict=True):
        tensors[f"{name}.weight"] = layer.weight.detach().cpu().numpy().astype(np.float32)
        tensors[f"{name}.bias"] = layer.bias.detach().cpu().numpy().astype(np.float32)
    path.write_bytes(safetensors_bytes(tensors, metadata))


def onnx_build(
    model: nn.Sequential, *, kind: str, classes: int, target_low: float = 0.0, target_high: float = 1.0
) -> Any:
    """The ONNX ModelProto of a Linear/ReLU stack with the runner's output head."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    layers = linear_layers(model)
    initializers, nodes = [], []
    current = "features"
    for i, layer in enumerate(layers):
        w = numpy_helper.from_array(layer.weight.detach().numpy().astype(np.float32), f"layers.{i}.weight")
        b = numpy_helper.from_array(layer.bias.detach().numpy().astype(np.float32), f"layers.{i}.bias")
        initializers += [w, b]
        out = "logits" if i == len(layers) - 1 else f"hidden.{i}"
        nodes.append(helper.make_node("Gemm", [current, w.name, b.name], [out], transB=1, name=f"gemm.{i}"))
        current = out
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"relu.{i}"], name=f"relu.{i}"))
            current = f"relu.{i}"
    width = layers[0].in_features
    if kind == "regressor":
        span = numpy_helper.from_array(np.array([target_high - target_low], dtype=np.float32), "target_span")
        low = numpy_helper.from_array(np.array([target_low], dtype=np.float32), "target_min")
        initializers += [span, low]
        zero = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")
        one = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")
        initializers += [zero, one]
        nodes += [
            helper.make_node("Clip", [current, "zero", "one"], ["clipped"], name="clip"),
            helper.make_node("Mul", ["clipped", "target_span"], ["scaled"], name="unscale.mul"),
            helper.make_node("Add", ["scaled", "target_min"], ["prediction"], name="unscale.add"),
        ]
        output = helper.make_tensor_value_info("prediction", TensorProto.FLOAT, ["N", 1])
    elif classes == 2:
        one = numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one")
        initializers.append(one)
        nodes += [
            helper.make_node("Sigmoid", [current], ["p_true"], name="sigmoid"),
            helper.make_node("Sub", ["one", "p_true"], ["p_false"], name="complement"),
            helper.make_node("Concat", ["p_false", "p_true"], ["probabilities"], axis=1, name="concat"),
        ]
        output = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])
    else:
        nodes.append(helper.make_node("Softmax", [current], ["probabilities"], axis=1, name="softmax"))
        output = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])
    graph = helper.make_graph(
        nodes,
        "dp_model",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", width])],
        [output],
        initializer=initializers,
    )
    proto = helper.make_model(graph, producer_name="dp_runner", opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    proto.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(proto)
    return proto


def onnx_bytes(proto: Any) -> bytes:
    """The ModelProto's bytes with protobuf's deterministic serialisation."""
    return proto.SerializeToString(deterministic=True)


def onnx_write(path: Path, proto: Any) -> None:
    path.write_bytes(onnx_bytes(proto))


# --- Markdown ---------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def model_card_markdown(card: dict[str, Any]) -> str:
    privacy, training = card["privacy"], card["training"]
    lines = [
        f"# Model card: {card['title']}",
        "",
        card["summary"],
        "",
        "## Model",
        "",
        f"- Architecture: {card['architecture']['description']}",
        f"- Input: `features`, float32 [N, {card['architecture']['input_width']}], preprocessed as below",
        f"- Output: {card['architecture']['output']}",
        f"- Target: `{card['target']['column']}`"
        + (
            f" (classes, in output order: {', '.join(card['target']['classes'])})"
            if "classes" in card["target"]
            else ""
        ),
        "",
        "## Preprocessing (from the declared schema only; reproduce it exactly)",
        "",
        "| column | kind | output indices | parameters | transform |",
        "| --- | --- | --- | --- | --- |",
    ]
    for feat in card["preprocessing"]["features"]:
        params = (
            f"min {feat['min']}, max {feat['max']}"
            if "min" in feat
            else (f"categories: {', '.join(feat['categories'])}" if "categories" in feat else "")
        )
        idx = feat["output_indices"]
        shown = f"{idx[0]}" if len(idx) == 1 else f"{idx[0]}-{idx[-1]}"
        lines.append(f"| `{feat['column']}` | {feat['kind']} | {shown} | {params} | {feat['transform']} |")
    lines += [
        "",
        "## Training",
        "",
        *(f"- {k.replace('_', ' ')}: {_fmt(v)}" for k, v in training.items()),
        "",
        "## Differential privacy",
        "",
        f"- Guarantee: ({_fmt(privacy['epsilon_spent'])}, {privacy['delta']:.3g})-DP for the released weights, "
        "metrics and curves together (the epsilon reserved; the accountant certifies "
        f"{_fmt(privacy['epsilon_accounted'])}), {privacy['accountant'].upper()} accountant (Opacus)",
        f"- Rows: calibrated on the owner's public declared row count ({privacy['public_rows']}); holdout "
        f"fraction {_fmt(privacy['holdout_fraction'])}",
        f"- Noise multiplier {_fmt(privacy['noise_multiplier'])}, sample rate {_fmt(privacy['sample_rate'])} "
        f"(Poisson sampling), {privacy['steps']} steps, clipping bound {_fmt(privacy['max_grad_norm'])}",
        f"- Evaluation queries: {privacy['evaluation']}",
        f"- Adjacency: {privacy['adjacency']}",
        "",
        "## Metrics",
        "",
        "| metric | value | source | description |",
        "| --- | --- | --- | --- |",
        *(f"| {m['name']} | {_fmt(m['value'])} | {m['source']} | {m['description']} |" for m in card["metrics"]),
        "",
        "## What is DP and what is public",
        "",
        *(f"- {line}" for line in card["dp_and_public"]),
        "",
        "## Intended use and limits",
        "",
        *(f"- {line}" for line in card["intended_use_and_limits"]),
        "",
    ]
    return "\n".join(lines)


def statistics_markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# DP summary statistics",
        "",
        f"({_fmt(doc['epsilon_spent'])}, {doc['delta']:.3g})-DP over all values below: {doc['queries']} OpenDP "
        f"queries (discrete Gaussian; exponential mechanism for quantiles) composed in zCDP, rho "
        f"{_fmt(doc['rho'])} (OpenDP's conversion certifies epsilon {_fmt(doc['epsilon_accounted'])}); noise "
        f"multiplier {_fmt(doc['noise_multiplier'])}.",
        "",
    ]
    for col in doc["columns"]:
        lines += [f"## `{col['name']}` ({col['type']})", ""]
        if "skipped" in col:
            lines += [f"Skipped: {col['skipped']}.", ""]
            continue
        if "bounds" in col:
            lines.append(f"- Declared bounds (public): {col['bounds']['min']} .. {col['bounds']['max']}")
        for key in ("count", "sum", "mean"):
            if key in col:
                extra = f" (noise std {_fmt(col[key]['noise_std'])})" if "noise_std" in col[key] else ""
                lines.append(f"- {key} (dp): {_fmt(col[key]['value'])}{extra}")
        if "quantiles" in col:
            pairs = ", ".join(
                f"q{lvl:g} = {_fmt(v)}"
                for lvl, v in zip(col["quantiles"]["levels"], col["quantiles"]["values"], strict=True)
            )
            lines.append(f"- quantiles (dp): {pairs}")
        if "histogram" in col:
            hist = col["histogram"]
            lines += ["", "| bin (public) | count (dp) |", "| --- | --- |"]
            if "categories" in hist:
                labels = hist["categories"]
            else:
                edges = hist["edges"]
                labels = [
                    f"[{edges[i]}, {edges[i + 1]}{']' if i == len(edges) - 2 else ')'}" for i in range(len(edges) - 1)
                ]
            lines += [f"| {label} | {count} |" for label, count in zip(labels, hist["counts"], strict=True)]
        lines.append("")
    lines += ["## Notes", "", *(f"- {n}" for n in doc["notes"]), ""]
    return "\n".join(lines)


def write_json(path: Path, document: Any) -> None:
    _json_dump(path, document)


def write_text(path: Path, text: str) -> None:
    """UTF-8 bytes whatever the locale (Markdown reports)."""
    path.write_bytes(text.encode("utf-8"))
