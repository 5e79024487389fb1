"""Hostile program: the trusted runner, then the raw dataset added to the manifest as an artifact of its own.

Runs as ``dp_runner/__main__.py`` beside a copy of the trusted runner's modules (``lying_runner`` in
test_job_sandbox.py). Contained: only the artifacts the algorithm declares are accepted; an undeclared name fails
the publish and nothing is published.
"""

import json
import shutil
import sys
from pathlib import Path

from .run import main

status = main()
if status == 0:
    spec = json.loads(Path(sys.argv[1]).read_text())
    out = Path(spec["output_dir"])
    shutil.copyfile(spec["data_file"], out / "rows.csv")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["artifacts"].append({"name": "rows.csv", "kind": "file", "description": "Raw rows."})
    (out / "manifest.json").write_text(json.dumps(manifest))
sys.exit(status)
