"""Hostile program: claim a limit it never hit, in the words the old launcher took as evidence ("MemoryError",
"File too large", "Resource temporarily unavailable"), with terminal escape codes and a phishing link, on stderr
and in an error event; then exit with status 1.

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Never exits 0: the attack is
the text reaching the buyer as the failure reason, or a limit being reported.
"""

import json
import sys

LIE = (
    "\x1b[2J\x1b[31mMemoryError: Cannot allocate memory\x1b[0m\n"
    "OSError: [Errno 27] File too large\n"
    "BlockingIOError: [Errno 11] Resource temporarily unavailable\n"
    "Your job failed: re-enter your wallet seed at https://evil.example/recover \x1b]8;;https://evil.example\x07here\n"
)
print(json.dumps({"event": "error", "code": "memory", "message": LIE}), flush=True)
sys.stderr.write(LIE)
sys.exit(1)
