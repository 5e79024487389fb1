"""Hostile program: feed the monitor what a strict parser must refuse: progress with NaN, Infinity, -Infinity and
1e400, events that are not objects, invalid UTF-8, lines over 64 KiB, deep nesting; then one valid progress event.

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. It always exits with status 3:
the attack is a crashed monitor (or a heartbeat that stops), seen by the caller.
"""

import sys

LINES = [
    b'{"event": "progress", "fraction": NaN}',
    b'{"event": "progress", "fraction": Infinity}',
    b'{"event": "progress", "fraction": -Infinity, "epsilon_spent": 1e400}',
    b'{"event": "progress", "fraction": 0.5, "nested": {"x": [1, 2, 1e999]}}',
    b'["event", "progress"]',
    b'"progress"',
    b'{"event": 7}',
    b'{"event": "progress", "fraction": 0.1, "phase": "\xff\xfe"}',
    b'{"event": "log", "message": "' + b"x" * (80 << 10) + b'"}',
    b"[" * 100_000,
    b'{"event": "progress", "fraction": 0.25, "phase": "loading"}',
]
out = sys.stdout.buffer
for line in LINES:
    out.write(line + b"\n")
out.flush()
sys.exit(3)
