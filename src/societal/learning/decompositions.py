"""How compiled steps compute what Inductor would otherwise leave to slow calls (``DECOMPOSITIONS``).

Eager code keeps torch's functions; where a step is traced for compiling (``compiling.Specialized``) these
replace them by arithmetic that Inductor fuses and vectorises:

* **digamma and trigamma**, which Inductor computes one number at a time, each with a loop of recurrences (a
  quarter of Taxi's compiled minibatch step, whose 500 states give every sample its own Beta). For x ≥ 0 (the
  Beta's α and β), with y = x + 6 (ψ(x + 1) = ψ(x) + 1/x moves x to where the asymptotic series are accurate
  to float32; the first term left out is below 10⁻⁸ for y ≥ 6), k = 0 … 5:

      ψ(x)  = ψ(y) − Σₖ 1/(x+k),     ψ(y)  ≈ ln y − 1/(2y) − 1/(12y²) + 1/(120y⁴) − 1/(252y⁶)
      ψ′(x) = ψ′(y) + Σₖ 1/(x+k)²,   ψ′(y) ≈ 1/y + 1/(2y²) + 1/(6y³) − 1/(30y⁵) + 1/(42y⁷)

* **the two highest bids** of an auction (``topk(2)``), which Inductor leaves to a library call: as the
  highest value, then the highest of the others, two reductions fused with the bids' arithmetic (on equal
  values the first wins; ``topk`` leaves their order open).

* **small batched matrix products** (a per-state layer of Chain or Bandit: a few thousand numbers), which
  Inductor hands to a library call that costs more than the arithmetic: as a sum of products they fuse into
  the kernels around them (Chain's update −12 %).

Below ``VECTORISE_FROM`` numbers the series are not worth their compile time (0.8 s more for Chain's per-state
Betas, with no faster step), and above ``FUSE_UP_TO`` numbers a product is the library's to compute.
"""

from __future__ import annotations

import torch
from torch import Tensor

SHIFT = 6
VECTORISE_FROM = 256
FUSE_UP_TO = 4096


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


def product(a: Tensor, b: Tensor) -> Tensor:
    """``a [K, M, N] @ b [K, N, P]`` as a sum over N of elementwise products."""
    return (a[..., None] * b[:, None]).sum(2)


def _digamma(x: Tensor) -> Tensor:
    return digamma(x) if x.numel() >= VECTORISE_FROM else NotImplemented


def _polygamma(n: int, x: Tensor) -> Tensor:
    return trigamma(x) if n == 1 and x.numel() >= VECTORISE_FROM else NotImplemented


def _small(a: Tensor, b: Tensor) -> bool:
    return a.numel() * b.shape[2] <= FUSE_UP_TO


def _bmm(a: Tensor, b: Tensor) -> Tensor:
    return product(a, b) if _small(a, b) else NotImplemented


def _baddbmm(bias: Tensor, a: Tensor, b: Tensor, *, beta: float = 1, alpha: float = 1) -> Tensor:
    return bias + product(a, b) if beta == alpha == 1 and _small(a, b) else NotImplemented


def _top_two(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> tuple[Tensor, Tensor]:
    if k != 2 or not largest or dim not in (-1, x.dim() - 1):
        return NotImplemented
    first, winner = x.max(-1, keepdim=True)
    second, runner_up = x.scatter(-1, winner, -torch.inf).max(-1, keepdim=True)
    return torch.cat([first, second], -1), torch.cat([winner, runner_up], -1)


aten = torch.ops.aten
DECOMPOSITIONS = {aten.digamma.default: _digamma, aten.polygamma.default: _polygamma,
                  aten.bmm.default: _bmm, aten.baddbmm.default: _baddbmm, aten.topk.default: _top_two}
