"""The runner's source of privacy-protecting randomness.

Every DP-SGD noise draw, every Poisson sampling decision and the MLP's initial weights come from
one ``SecureRandom`` per job: numpy's Philox-4x64 counter-based generator keyed with a fresh
128-bit value from the operating system (``secrets.randbits(128)``). A torch Mersenne Twister
seeded with 32 or 64 bits could be brute-forced from a released number and its noise subtracted;
a 128-bit Philox key cannot. (Opacus's ``secure_mode`` would need torchcsprng, which does not
install on Python 3.11.)

The key is never kept outside the bit generator: it is not an attribute, not in ``repr``, and
nothing here returns or writes it. ``seed`` exists for tests only (byte-determinism checks); the
runner's entry point never passes it.

The DP statistics do not use this module: OpenDP draws their noise with its own exact samplers and
its own CSPRNG.
"""

from __future__ import annotations

import secrets

import numpy as np
import torch

KEY_BITS = 128


class SecureRandom:
    """Draws for one job from Philox keyed with ``KEY_BITS`` bits of OS entropy."""

    __slots__ = ("_generator",)

    def __init__(self, *, seed: int | None = None) -> None:
        if seed is not None and not 0 <= seed < 1 << KEY_BITS:
            raise ValueError("a test seed must fit in 128 bits")
        self._generator = np.random.Generator(
            np.random.Philox(key=secrets.randbits(KEY_BITS) if seed is None else seed)
        )

    def __repr__(self) -> str:  # never show the key
        return "SecureRandom(Philox, 128-bit OS key)"

    def __reduce__(self) -> None:  # type: ignore[override]
        raise TypeError("SecureRandom cannot be pickled (it would copy the key)")

    def normal(self, size: int | tuple[int, ...], std: float, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """N(0, std²) draws as a torch tensor of ``dtype`` (float32 or float64)."""
        np_dtype = np.float64 if dtype == torch.float64 else np.float32
        draws = self._generator.standard_normal(size, dtype=np_dtype)
        if std != 1.0:
            draws *= np_dtype(std)
        return torch.from_numpy(draws)

    def uniform(self, shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
        """float32 draws uniform on [low, high)."""
        return torch.from_numpy(self._generator.uniform(low, high, size=shape).astype(np.float32))

    def random(self, n: int) -> np.ndarray:
        """n float64 draws uniform on [0, 1)."""
        return self._generator.random(n)
