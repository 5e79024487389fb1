"""Hostile program: the trusted runner, whose manifest then claims that the job spent no epsilon.

Runs as ``dp_runner/__main__.py`` beside a copy of the trusted runner's modules (``lying_runner`` in
test_job_sandbox.py), so its outputs are otherwise the real ones. Contained: the worker charges the epsilon it
reserved, computed from the public parameters, never the runner's claim.
"""

import json
import sys
from pathlib import Path

from .run import main

status = main()
if status == 0:
    spec = json.loads(Path(sys.argv[1]).read_text())
    path = Path(spec["output_dir"]) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["epsilon_spent"] = 0
    path.write_text(json.dumps(manifest))
sys.exit(status)
