"""Hostile program: progress the trusted runner never sends (phase "finished" while running, epsilon 1e308,
Infinity, NaN), then silence for a few seconds, then the trusted runner itself.

Runs as ``dp_runner/__main__.py`` beside a copy of the trusted runner's modules (``lying_runner`` in
test_job_sandbox.py). Contained: the events are dropped, the heartbeat goes on through the silence (a NaN once
broke the write that carries it, and the reaper failed the healthy job), and the job finishes for real.
"""

import sys
import time

from .run import main

LINES = [
    '{"event":"progress","phase":"finished","epoch":3,"epochs":3,"step":9,"steps":9,"epsilon":0.3}',
    '{"event":"progress","phase":"training","epoch":1,"epochs":3,"step":1,"steps":9,"epsilon":1e308}',
    '{"event":"progress","phase":"training","epoch":1,"epochs":3,"step":1,"steps":9,"epsilon":Infinity}',
    '{"event":"log","message":"Data loaded.\\u0000"}',
    '{"event":"progress","phase":"training","epoch":1,"epochs":3,"step":1,"steps":9,"epsilon":NaN}',
]
for line in LINES:
    print(line, flush=True)
    time.sleep(0.3)
time.sleep(4)
sys.exit(main())
