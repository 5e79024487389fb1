"""Exact per-example gradient clipping for stacks of ``nn.Linear`` layers, in one backward pass.

For a Linear layer with input rows X_i and output-gradient rows G_i (of example i's loss), example
i's weight gradient is the outer product G_i X_iᵀ and its bias gradient G_i, so

    ||grad_i||² = Σ_layers ||G_i||² · (||X_i||² + 1)

without ever materialising per-example gradients. The clip factor is Opacus's
(``DPOptimizer.clip_and_accumulate``): c_i = min(1, C / (||grad_i|| + 1e-6)); the clipped sum is
(c ⊙ G)ᵀ X for the weight and Σ c_i G_i for the bias. G comes from a single
``torch.autograd.grad(Σ loss_i, layer outputs)``: parameter gradients are never computed.

Noise and scaling follow Opacus's DPOptimizer with ``loss_reduction="mean"``: Gaussian noise of
std ``noise_multiplier * C`` on the clipped sums (one draw per coordinate from the job's
``rng.SecureRandom``, a Philox generator keyed with 128 OS bits, never torch's Mersenne Twister),
then division by the expected batch size (public: from the declared row count), then a plain SGD
step. Poisson sampling masks come from the same generator.

Only ``nn.Linear`` layers and parameter-free modules (ReLU, Identity, ...) are accepted: that is
what makes the identity above exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .rng import SecureRandom

CLIP_EPSILON = 1e-6  # Opacus: max_grad_norm / (per_sample_norms + 1e-6)
LOSSES = ("bce", "ce", "mse")


def mlp_build(sizes: list[int], *, generator: SecureRandom | None = None, zero_init: bool = False) -> nn.Sequential:
    """Linear-ReLU-...-Linear with ``sizes = [inputs, hidden..., outputs]``. Weights are drawn
    like nn.Linear's default (uniform ±1/sqrt(fan_in)) from ``generator`` (a fresh SecureRandom
    when None); ``zero_init`` starts a single-layer (convex) model at zero instead."""
    if generator is None and not zero_init:
        generator = SecureRandom()
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layer = nn.Linear(sizes[i], sizes[i + 1])
        with torch.no_grad():
            if zero_init:
                layer.weight.zero_()
                layer.bias.zero_()
            else:
                bound = 1.0 / max(sizes[i], 1) ** 0.5
                layer.weight.copy_(generator.uniform(tuple(layer.weight.shape), -bound, bound))  # type: ignore[union-attr]
                layer.bias.copy_(generator.uniform(tuple(layer.bias.shape), -bound, bound))  # type: ignore[union-attr]
        layers.append(layer)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def linear_layers(model: nn.Sequential) -> list[nn.Linear]:
    """The model's Linear layers, checking that everything else is parameter-free."""
    layers = []
    for module in model:
        if isinstance(module, nn.Linear):
            if module.bias is None:
                raise ValueError("fastdp needs Linear layers with a bias")
            layers.append(module)
        elif any(True for _ in module.parameters()):
            raise ValueError(
                f"fastdp supports only Linear layers and parameter-free modules, not {type(module).__name__}"
            )
    return layers


def per_example_loss(logits: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Each example's loss: binary cross-entropy on one logit, cross-entropy, or squared error."""
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(logits[:, 0], y.to(logits.dtype), reduction="none")
    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    if loss == "mse":
        return (logits[:, 0] - y.to(logits.dtype)) ** 2
    raise ValueError(f"unknown loss {loss!r}")


def _summed_loss(logits: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(logits[:, 0], y.to(logits.dtype), reduction="sum")
    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="sum")
    return per_example_loss(logits, y, loss).sum()


@dataclass
class ClippedGrads:
    """Summed clipped gradients, one per parameter in ``model.parameters()`` order, plus each
    example's unclipped gradient norm and clip factor."""

    grads: list[torch.Tensor]
    norms: torch.Tensor
    factors: torch.Tensor


class FastDP:
    """DP-SGD for a Linear/ReLU stack: exact per-example clipping, Gaussian noise, SGD step.

    ``generator`` (the job's SecureRandom; a fresh one when None) drives the noise."""

    def __init__(
        self,
        model: nn.Sequential,
        *,
        loss: str,
        max_grad_norm: float,
        noise_multiplier: float,
        expected_batch_size: int,
        learning_rate: float,
        generator: SecureRandom | None = None,
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}")
        self.model = model
        self.layers = linear_layers(model)
        self.loss = loss
        self.max_grad_norm = float(max_grad_norm)
        self.noise_multiplier = float(noise_multiplier)
        self.expected_batch_size = int(expected_batch_size)
        self.learning_rate = float(learning_rate)
        self.generator = generator if generator is not None else SecureRandom()
        self.params = [p for layer in self.layers for p in (layer.weight, layer.bias)]
        self._numel = sum(p.numel() for p in self.params)

    def _forward_capture(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        inputs, outputs = [], []
        h = x
        for module in self.model:
            if isinstance(module, nn.Linear):
                inputs.append(h)
                h = F.linear(h, module.weight, module.bias)
                outputs.append(h)
            else:
                h = module(h)
        return h, inputs, outputs

    def clipped_grad_sum(self, x: torch.Tensor, y: torch.Tensor) -> ClippedGrads:
        """Σ_i c_i · grad_i of the per-example losses on the batch (x, y), clipped like Opacus.
        An empty batch gives zero sums."""
        with torch.enable_grad():
            logits, inputs, outputs = self._forward_capture(x)
            total = _summed_loss(logits, y, self.loss)
            grads_out = torch.autograd.grad(total, outputs)
        with torch.no_grad():
            sq_norms = None
            for a, g in zip(inputs, grads_out, strict=True):
                term = g.pow(2).sum(1) * (a.pow(2).sum(1) + 1.0)
                sq_norms = term if sq_norms is None else sq_norms + term
            norms = sq_norms.sqrt()  # type: ignore[union-attr]
            factors = (self.max_grad_norm / (norms + CLIP_EPSILON)).clamp(max=1.0)
            grads = []
            for a, g in zip(inputs, grads_out, strict=True):
                scaled = g * factors.unsqueeze(1)
                grads.append(scaled.t() @ a)
                grads.append(scaled.sum(0))
        return ClippedGrads(grads, norms, factors)

    def noise(self) -> torch.Tensor:
        """One flat draw of N(0, (noise_multiplier·C)²) per parameter."""
        std = self.noise_multiplier * self.max_grad_norm
        if std == 0:
            return torch.zeros(self._numel)
        return self.generator.normal(self._numel, std)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One DP-SGD step on a Poisson-sampled batch."""
        clipped = self.clipped_grad_sum(x, y)
        noise = self.noise()
        scale = -self.learning_rate / self.expected_batch_size
        offset = 0
        with torch.no_grad():
            for p, g in zip(self.params, clipped.grads, strict=True):
                n = p.numel()
                g.add_(noise[offset : offset + n].view_as(g))
                offset += n
                p.add_(g, alpha=scale)


def poisson_batch(n: int, sample_rate: float, generator: SecureRandom) -> torch.Tensor:
    """Indices of a Poisson sample: each of ``n`` examples independently with ``sample_rate``,
    the rule of Opacus's UniformWithReplacementSampler (``rand(n) < sample_rate``), the uniforms
    drawn from the job's SecureRandom."""
    return torch.from_numpy(np.flatnonzero(generator.random(n) < sample_rate))
