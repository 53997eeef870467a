"""The Beta policy's digamma and trigamma functions as arithmetic that Inductor vectorises, for the compiled step.

Inductor computes ``digamma`` and ``polygamma`` one number at a time, each with a loop of recurrences (a quarter
of Taxi's compiled minibatch step, whose 500 states give every sample its own Beta); as arithmetic they run 16
numbers to a vector instruction. For x ≥ 0, with y = x + 6 (ψ(x + 1) = ψ(x) + 1/x moves x to where the asymptotic
series are accurate to float32; the first term left out is below 10⁻⁸ for y ≥ 6):

    ψ(x)  = ψ(y) − Σₖ 1/(x+k),     ψ(y)  ≈ ln y − 1/(2y) − 1/(12y²) + 1/(120y⁴) − 1/(252y⁶)
    ψ′(x) = ψ′(y) + Σₖ 1/(x+k)²,   ψ′(y) ≈ 1/y + 1/(2y²) + 1/(6y³) − 1/(30y⁵) + 1/(42y⁷)       (k = 0 … 5)

Eager code keeps torch's functions; ``DECOMPOSITIONS`` replaces them where a PPO step is traced for compiling,
whose only digamma and trigamma are those of the Beta's α, β ≥ 0. (``lgamma`` compiles to the C library's, fast.)
"""

from __future__ import annotations

import torch
from torch import Tensor

SHIFT = 6


def digamma(x: Tensor) -> Tensor:
    y = x + SHIFT
    z2 = (1 / y) ** 2
    series = y.log() - 0.5 / y - z2 * (1 / 12 - z2 * (1 / 120 - z2 / 252))
    return series - sum(1 / (x + k) for k in range(SHIFT))


def trigamma(x: Tensor) -> Tensor:
    y = x + SHIFT
    z = 1 / y
    z2 = z * z
    series = z + z2 * (0.5 + z * (1 / 6 - z2 * (1 / 30 - z2 / 42)))
    return series + sum((1 / (x + k)) ** 2 for k in range(SHIFT))


# Below this many numbers the series are not worth their compile time (0.8 s more for Chain's per-state Betas,
# with no faster step): torch's functions stay.
VECTORISE_FROM = 256


def _digamma(x: Tensor) -> Tensor:
    return digamma(x) if x.numel() >= VECTORISE_FROM else NotImplemented


def _polygamma(n: int, x: Tensor) -> Tensor:
    return trigamma(x) if n == 1 and x.numel() >= VECTORISE_FROM else NotImplemented


aten = torch.ops.aten
DECOMPOSITIONS = {aten.digamma.default: _digamma, aten.polygamma.default: _polygamma}
