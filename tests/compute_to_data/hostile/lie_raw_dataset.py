"""Hostile program: the trusted runner, then the raw decrypted dataset shipped as ``model.safetensors``.

Runs as ``dp_runner/__main__.py`` beside a copy of the trusted runner's modules (``lying_runner`` in
test_job_sandbox.py), so the manifest and the other artifacts are the real ones. Contained: the worker parses the
weights against the architecture the public parameters define, refuses them, and publishes nothing.
"""

import json
import shutil
import sys
from pathlib import Path

from .run import main

status = main()
if status == 0:
    spec = json.loads(Path(sys.argv[1]).read_text())
    shutil.copyfile(spec["data_file"], Path(spec["output_dir"]) / "model.safetensors")
sys.exit(status)
