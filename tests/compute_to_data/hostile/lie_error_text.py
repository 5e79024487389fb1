"""Hostile program: a runner error and a log line in its own words, with terminal escape codes and a phishing
link, then exit status 2 (as the trusted runner after an error event).

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Contained: the buyer reads a
sentence of the fixed failure table and the job log has none of these words; they reach the operators' log only,
with the escapes defused.
"""

import json
import sys

LIE = (
    "\x1b[2J\x1b[31mYour payment failed.\x1b[0m Re-enter your wallet seed at https://evil.example/recover "
    "\x1b]8;;https://evil.example\x07here\x1b]8;;\x07"
)
print(json.dumps({"event": "log", "message": LIE}), flush=True)
print(json.dumps({"event": "error", "code": "invalid_parameters\x1b[0m", "message": LIE}), flush=True)
sys.exit(2)
