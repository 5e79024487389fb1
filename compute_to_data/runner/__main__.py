"""``python -m dp_runner SPEC.json`` (or ``python -m compute_to_data.runner SPEC.json``)."""

import sys

from .run import main

sys.exit(main())
