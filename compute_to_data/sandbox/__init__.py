"""Launches one compute-to-data job in a fresh sandbox and reports how it ended.

No Django here: everything comes in as arguments, so the launcher can be tested and benchmarked alone. One
module per concern, in the manner of nsjail's config (a declarative policy handed to a launcher):

- ``limits``: ``Limits`` of a run, the rlimits they become, ``human_bytes`` for the messages;
- ``host``: ``SandboxConfig`` (where the interpreter, site-packages and runner are, the uid pool, the lease and
  quarantine folders, whether root mode is required) and ``resolve`` (every ingredient readable by a sandbox
  uid, or ``SandboxUnavailable`` saying what to fix);
- ``policy``: ``SandboxPolicy``, what a sandbox is as data (namespaces, uid, mounts, environment, limits), and
  ``policy_for``, the one place that builds it (the layout inside is in its docstring);
- ``cgroup``, ``uids``, ``mounts``, ``seccomp``: root mode's kernel side: the per-run cgroup (memory, pids and CPU
  over the whole tree, and the kernel's facts of how a run ended), a uid of its own per job leased host-wide,
  the tmpfs workspaces, and the seccomp filter bwrap loads;
- ``launcher``: the policy rendered as a bubblewrap command line, the child's setup (cgroup, rlimits, the job's
  uid), and ``sandbox_preflight`` (which refuses unprivileged mode when the config requires root mode);
- ``monitor``: the runner's events (strictly parsed), the stderr tail, the CPU/disk/wall-clock watchdogs,
  cancellation polling, and ``Outcome``, how an end reads (``classify``, from evidence, never the program's
  words);
- ``workspace``, ``tree``, ``readback``, ``cleanup``: the job's private folder, walking and removing a tree at any
  depth, reading its outputs without following links, and removing it (or quarantining it: ``CleanupFailed``)
  and whatever of the run is left;
- ``backends``: ``BubblewrapBackend`` and the test-only ``UnsandboxedBackend``, chosen by name
  (``backend_named``; ``COMPUTE_SANDBOX_BACKEND`` on the Django side, which production refuses to set to
  anything but bubblewrap).

Paths in the spec: take them from ``backend.paths(workspace)`` (/data, /out and /tmp in the sandbox)."""

from .backends import BACKENDS, BubblewrapBackend, SandboxBackend, UnsandboxedBackend, backend_named
from .cleanup import CleanupFailed, rmtree_fixing_permissions
from .host import SandboxConfig, SandboxUnavailable
from .launcher import sandbox_preflight
from .limits import Limits, human_bytes
from .monitor import Outcome
from .policy import DATA_MOUNT, OUT_MOUNT, RUNNER_MOUNT, TMP_MOUNT, SandboxPolicy, policy_for
from .workspace import Workspace, workspace

# The production launcher: every job runs through it unless settings choose another backend.
sandbox_run = BubblewrapBackend().run

__all__ = [
    "BACKENDS",
    "DATA_MOUNT",
    "OUT_MOUNT",
    "RUNNER_MOUNT",
    "TMP_MOUNT",
    "BubblewrapBackend",
    "CleanupFailed",
    "Limits",
    "Outcome",
    "SandboxBackend",
    "SandboxConfig",
    "SandboxPolicy",
    "SandboxUnavailable",
    "UnsandboxedBackend",
    "Workspace",
    "backend_named",
    "human_bytes",
    "policy_for",
    "rmtree_fixing_permissions",
    "sandbox_preflight",
    "sandbox_run",
    "workspace",
]
