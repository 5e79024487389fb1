"""The sandbox's limits live in ``common.limits`` (the upload checks apply the same rlimits)."""

from common.limits import Limits, human_bytes, rlimit_setter

__all__ = ["Limits", "human_bytes", "rlimit_setter"]
