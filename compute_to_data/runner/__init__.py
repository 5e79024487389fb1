"""The trusted differential-privacy runner of compute-to-data.

Runs inside the sandbox as ``python -m dp_runner /data/spec.json`` (this folder is bind-mounted
as ``/opt/runner/dp_runner``) and is imported by Django as ``compute_to_data.runner``; so it uses
relative imports only and never imports Django. This module stays light (no torch): Django needs
only ``params`` (the algorithm catalogue and parameter validation) in web requests.

Modules: ``params`` (catalogue, validation), ``preprocess`` (schema-driven inputs), ``fastdp``
(exact per-example clipping in one backward pass), ``rng`` (the job's secure generator),
``accounting`` (Opacus calibration and accountants), ``train``, ``statistics`` (through OpenDP,
zCDP), ``preview`` (public accuracy preview for quotes), ``artifacts`` (deterministic safetensors,
ONNX, cards), ``events`` (stdout protocol), ``run`` (entry point).
"""

from .params import ALGORITHMS, ParameterError, algorithms_describe, parameters_normalize

__all__ = ["ALGORITHMS", "ParameterError", "algorithms_describe", "parameters_normalize"]
