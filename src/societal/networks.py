"""The networks of a society's K learners, stacked: learner k's parameters are row k of one tensor.

Two ways to stack a network, with one interface (``size``, ``init_(theta)``, ``(theta, x)``):

* ``StackedMLP``: hand-written batched matrix products, the fastest for the small MLPs of the
  tabular tasks (PAPER.md §3.1);
* ``StackedModule``: any ``nn.Module`` (e.g. a CNN), run for all learners with ``torch.func.vmap``.

``x`` is either shared by all learners (``[B, *obs]``, an auction's observations) or per learner
(``[K, B, *obs]``, each learner's own minibatch); ``batch_dims`` (1 or 2) says which.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap


class StackedMLP:
    """K MLPs ``dims[0] → … → dims[-1]``; a ReLU follows each of the first ``relu_layers`` layers."""

    def __init__(self, dims: list[int], relu_layers: int) -> None:
        self.dims, self.relu_layers = dims, relu_layers
        self.shapes = list(zip(dims[:-1], dims[1:]))
        self.size = sum(i * o + o for i, o in self.shapes)

    def layers(self, theta: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Views ``(W [K, in, out], b [K, 1, out])`` of each layer."""
        parts = theta.split([n for i, o in self.shapes for n in (i * o, o)], dim=1)  # one autograd node
        return [(parts[2 * n].view(-1, i, o), parts[2 * n + 1].view(-1, 1, o)) for n, (i, o) in enumerate(self.shapes)]

    @torch.no_grad()
    def init_(self, theta: Tensor) -> None:
        for w, b in self.layers(theta):  # nn.Linear's initialisation
            bound = 1 / math.sqrt(w.shape[1])
            w.uniform_(-bound, bound)
            b.uniform_(-bound, bound)

    def __call__(self, theta: Tensor, x: Tensor, batch_dims: int = 1) -> Tensor:
        x = x.flatten(batch_dims)
        for n, (w, b) in enumerate(self.layers(theta)):
            x = torch.matmul(x, w) + b if batch_dims == 1 else torch.baddbmm(b, x, w)
            if n < self.relu_layers:
                x = torch.relu(x)
        return x


class StackedModule:
    """K copies of the module ``make()`` builds, each with its own parameters (no buffers allowed)."""

    def __init__(self, make: Callable[[], nn.Module]) -> None:
        self.make = make
        template = make()
        if list(template.buffers()):
            raise ValueError("stacked modules cannot have buffers (e.g. BatchNorm statistics); use GroupNorm")
        self.names = [n for n, _ in template.named_parameters()]
        self.shapes = [p.shape for p in template.parameters()]
        self.size = sum(p.numel() for p in template.parameters())
        self.base = template.to("meta")

    @torch.no_grad()
    def init_(self, theta: Tensor) -> None:
        for row in theta:
            row.copy_(torch.cat([p.flatten() for p in self.make().parameters()]))

    def __call__(self, theta: Tensor, x: Tensor, batch_dims: int = 1) -> Tensor:
        parts = theta.split([s.numel() for s in self.shapes], dim=1)
        params = {n: p.view(-1, *s) for n, p, s in zip(self.names, parts, self.shapes)}
        run = lambda p, xx: functional_call(self.base, p, (xx,))  # noqa: E731
        return vmap(run, in_dims=(0, None if batch_dims == 1 else 0))(params, x)


class MinigridCNN(nn.Module):
    """The original's MiniGrid encoder (PAPER.md §3.1): 7×7×3 integer codes → 64 features."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 2), nn.ReLU(), nn.Conv2d(32, 64, 2), nn.ReLU(), nn.Flatten(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.float().movedim(-1, -3))  # [..., H, W, C] → [..., C, H, W]


Stacked = StackedMLP | StackedModule
NETWORKS = ("mlp", "minigrid_cnn", "mnist_cnn")


def build(network: str, obs_shape: tuple[int, ...], hidden: tuple[int, ...],
          relu_features: bool = False) -> tuple[Stacked, int, Stacked]:
    """``(policy encoder, its feature size, value network)`` of a named architecture.

    The original's Beta bidders have no ReLU after the encoder's last layer (``MLP([d, 16])`` is one
    Linear layer); its categorical policies do (``relu_features``).
    """
    if network == "mlp":
        d, h = math.prod(obs_shape), list(hidden)
        return StackedMLP([d, *h], len(h) - (not relu_features)), h[-1], StackedMLP([d, *h, 1], len(h))
    if network == "minigrid_cnn":
        return StackedModule(MinigridCNN), 64, StackedModule(lambda: nn.Sequential(MinigridCNN(), nn.Linear(64, 1)))
    if network == "mnist_cnn":  # PAPER.md §3.1: the bidder's encoder has 32 outputs, the value function 1
        from societal.environments.mnist_classifier import mnist_cnn

        return StackedModule(lambda: mnist_cnn(32)), 32, StackedModule(lambda: mnist_cnn(1))
    raise ValueError(f"unknown network {network!r}; allowed: {', '.join(NETWORKS)}")
