"""Random numbers for batched MinAtar twins: a torch stream in training, MinAtar's own NumPy stream in tests.

MinAtar draws only with ``RandomState.rand`` and ``RandomState.randint``, and only in some steps (a spawn
timer, a reset). A twin asks for draws with a mask of the copies that would draw in MinAtar; ``TorchDraws``
draws for every copy (its values outside the mask are ignored), ``NumpyDraws`` (one copy, tests only) calls
the NumPy method exactly when that copy is in the mask, so that a twin of one copy consumes MinAtar's stream in
MinAtar's order and can be compared with it step for step.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import Tensor


class Draws(Protocol):
    def rand(self, mask: Tensor, n: int = 1) -> Tensor:
        """``[B, n]`` float64 uniform in [0, 1) (``RandomState.rand(n)`` for each copy in ``mask``)."""
        ...

    def randint(self, mask: Tensor, low: int, high: int | Tensor, n: int = 1) -> Tensor:
        """``[B, n]`` int64 in [low, high) (``RandomState.randint(low, high, n)``); ``high`` may differ by copy."""
        ...


class TorchDraws:
    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def rand(self, mask: Tensor, n: int = 1) -> Tensor:
        return torch.rand(mask.shape[0], n, dtype=torch.float64, generator=self.generator, device=mask.device)

    def randint(self, mask: Tensor, low: int, high: int | Tensor, n: int = 1) -> Tensor:
        high = torch.as_tensor(high, device=mask.device).reshape(-1, 1)
        return low + (self.rand(mask, n) * (high - low)).long()


class NumpyDraws:
    """One copy's draws from ``random`` (MinAtar's own ``RandomState``), in MinAtar's order."""

    def __init__(self, random: np.random.RandomState) -> None:
        self.random = random

    def rand(self, mask: Tensor, n: int = 1) -> Tensor:
        assert mask.shape == (1,)
        values = self.random.rand(n) if bool(mask[0]) else np.zeros(n)
        return torch.as_tensor(values, dtype=torch.float64).reshape(1, n)

    def randint(self, mask: Tensor, low: int, high: int | Tensor, n: int = 1) -> Tensor:
        assert mask.shape == (1,)
        high = int(torch.as_tensor(high).reshape(-1)[0])
        values = self.random.randint(low, high, n) if bool(mask[0]) else np.zeros(n, dtype=np.int64)
        return torch.as_tensor(values, dtype=torch.int64).reshape(1, n)
