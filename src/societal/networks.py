"""The networks of a society's K learners, stacked: learner k's parameters are row k of one tensor.

Two ways to stack a network, with one interface (``size``, ``init_(theta)``, ``(theta, x)``):

* ``StackedMLP``: hand-written batched matrix products, the fastest for the small MLPs of the
  tabular tasks (the 2020 code's one-hidden-layer MLPs of 16 units);
* ``StackedModule``: a layer stack (e.g. a CNN), run for all learners as grouped convolutions.

``x`` is either shared by all learners (``[B, *obs]``, an auction's observations) or per learner
(``[K, B, *obs]``, each learner's own minibatch); ``batch_dims`` (1 or 2) says which.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class StackedMLP:
    """K MLPs ``dims[0] → … → dims[-1]``; a ReLU follows each of the first ``relu_layers`` layers. Without ``bias``
    no layer has one: on one-hot inputs, one layer is then a table, each state's output its own parameters."""

    def __init__(self, dims: list[int], relu_layers: int, bias: bool = True) -> None:
        self.dims, self.relu_layers, self.bias = dims, relu_layers, bias
        self.shapes = list(zip(dims[:-1], dims[1:]))
        self.size = sum(i * o + o * bias for i, o in self.shapes)

    def layers(self, theta: Tensor) -> list[tuple[Tensor, Tensor | None]]:
        """Views ``(W [K, in, out], b [K, 1, out] or None)`` of each layer."""
        parts = iter(theta.split([n for i, o in self.shapes for n in (i * o, o)[: 1 + self.bias]], dim=1))
        return [(next(parts).view(-1, i, o), next(parts).view(-1, 1, o) if self.bias else None)
                for i, o in self.shapes]

    @torch.no_grad()
    def init_(self, theta: Tensor) -> None:
        for w, b in self.layers(theta):  # nn.Linear's initialisation
            bound = 1 / math.sqrt(w.shape[1])
            w.uniform_(-bound, bound)
            if b is not None:
                b.uniform_(-bound, bound)

    def __call__(self, theta: Tensor, x: Tensor, batch_dims: int = 1) -> Tensor:
        """The output at ``x``: ``[B, …]`` shared by all learners (``batch_dims`` 1) or ``[K, B, …]`` per learner (2).
        Integer inputs ``[…, 1]`` are state indices standing for one-hot vectors."""
        return self.forward_saving(theta, x, batch_dims)[0]

    def forward_saving(self, theta: Tensor, x: Tensor, batch_dims: int = 2) -> tuple[Tensor, list[Tensor]]:
        """The output at ``x`` (per learner by default), and every layer's input (for ``backward``)."""
        inputs, h = [], x.flatten(batch_dims)
        if not self.shapes and batch_dims == 1:  # no layers: the input itself, as every learner's output
            h = h.expand(len(theta), *h.shape)
        for n, (w, b) in enumerate(self.layers(theta)):
            inputs.append(h)
            h = _linear(w, b, h, batch_dims)
            if n < self.relu_layers:
                h = torch.relu(h)
        return h, inputs

    def backward(self, theta: Tensor, inputs: list[Tensor], grad_out: Tensor) -> Tensor:
        """``∂L/∂θ [K, size]`` from ``∂L/∂output [K, M, out]``."""
        return torch.cat(self.backward_blocks(theta, inputs, grad_out), 1)

    def backward_blocks(self, theta: Tensor, inputs: list[Tensor], grad_out: Tensor) -> list[Tensor]:
        """``∂L/∂θ`` as θ's blocks of columns (``∂W [K, in·out]``, ``∂b [K, out]`` of each layer), layer by layer
        from the last: for ``y = h W + b``, ``∂W = hᵀ ∂y``, ``∂b = Σ_m ∂y``, ``∂h = ∂y Wᵀ``, zero where a ReLU made
        ``h`` zero. For state indices, ``∂W`` adds each ``∂y`` to the row of its state."""
        grads, g, layers = [], grad_out, self.layers(theta)
        for n in reversed(range(len(layers))):
            w, h = layers[n][0], inputs[n]
            d_w = (torch.bmm(h.transpose(1, 2), g) if h.is_floating_point()
                   else torch.zeros_like(w).scatter_add_(1, h.expand(-1, -1, w.shape[2]), g))
            grads += [g.sum(1), d_w.flatten(1)] if self.bias else [d_w.flatten(1)]
            if n:
                g = torch.bmm(g, w.transpose(1, 2))
                if n - 1 < self.relu_layers:
                    g = g * (h > 0)
        return grads[::-1]


class Grouped:
    """Samples grouped by the state they were taken in (indices ``at [K, M]`` into ``states``): what depends on the
    state only is computed once per state and read by its samples (``pick``), and the samples' gradients are
    summed into their state's (``total``)."""

    def __init__(self, at: Tensor, states: int) -> None:
        self.at, self.states = at, states

    def pick(self, x: Tensor) -> Tensor:
        """``[K, S, …]`` → ``[K, M, …]``."""
        return x.gather(1, self.at if x.dim() == 2 else self.at[..., None].expand(-1, -1, x.shape[2]))

    def total(self, x: Tensor) -> Tensor:
        """``[K, M, …]`` → ``[K, S, …]``."""
        index = self.at if x.dim() == 2 else self.at[..., None].expand(-1, -1, x.shape[2])
        return x.new_zeros(x.shape[0], self.states, *x.shape[2:]).scatter_add_(1, index, x)


class Ungrouped:
    """Every sample its own state."""

    @staticmethod
    def pick(x: Tensor) -> Tensor:
        return x

    total = pick


UNGROUPED = Ungrouped()


def _linear(w: Tensor, b: Tensor | None, x: Tensor, batch_dims: int) -> Tensor:
    """``x W + b`` for each learner's ``W [K, in, out]``; an integer ``x [..., 1]`` picks rows of ``W`` (one-hot)."""
    if not x.is_floating_point():
        y = w[:, x[:, 0]] if batch_dims == 1 else w.gather(1, x.expand(-1, -1, w.shape[2]))
    elif b is not None and batch_dims == 2:
        return torch.baddbmm(b, x, w)
    else:
        y = torch.matmul(x, w) if batch_dims == 1 else torch.bmm(x, w)
    return y if b is None else y + b


class StackedModule:
    """K copies of the layer stack ``make()`` builds (``nn.Sequential``s of ``Conv2d``, ``Linear``, ``GroupNorm``,
    ``Flatten`` and parameter-free layers), each with its own parameters, run as grouped convolutions.

    Learner k's features are channel block k, so one ``conv2d(groups=K)`` runs every learner's layer; a shared
    input meets all K filter banks in one plain convolution. About 2.4× faster than ``torch.func.vmap`` for
    the MiniGrid CNN's forward pass (the rollout's), equal for forward + backward.
    """

    PARAMETRIC = (nn.Conv2d, nn.Linear, nn.GroupNorm)

    def __init__(self, make: Callable[[], nn.Module]) -> None:
        self.make = make
        template = make()
        if list(template.buffers()):
            raise ValueError("stacked modules cannot have buffers (e.g. BatchNorm statistics); use GroupNorm")
        self.layers = _leaves(template)
        unsupported = {type(m).__name__ for m in self.layers
                       if list(m.parameters()) and not isinstance(m, self.PARAMETRIC)}
        if unsupported:
            raise ValueError(f"cannot stack {', '.join(sorted(unsupported))}; allowed with parameters: "
                             "Conv2d, Linear, GroupNorm")
        self.shapes = [[p.shape for p in m.parameters()] for m in self.layers]
        self.size = sum(p.numel() for p in template.parameters())

    @torch.no_grad()
    def init_(self, theta: Tensor) -> None:
        for row in theta:
            row.copy_(torch.cat([p.flatten() for p in self.make().parameters()]))

    def __call__(self, theta: Tensor, x: Tensor, batch_dims: int = 1) -> Tensor:
        k = len(theta)
        flat = [s for shapes in self.shapes for s in shapes]
        parts = iter(p.view(k, *s) for p, s in zip(theta.split([s.numel() for s in flat], dim=1), flat))
        stacked = batch_dims == 2  # x is [B, K, …] (learner k's features in block k), else shared [B, …]
        if stacked:
            x = x.movedim(0, 1)
        raw = True  # layers before the first parametric one see the input as given (e.g. channels-first)
        for layer, shapes in zip(self.layers, self.shapes):
            p = [next(parts) for _ in shapes]
            if isinstance(layer, nn.Conv2d):
                bias = p[1].flatten() if len(p) > 1 else None
                x = F.conv2d(x.flatten(1, 2) if stacked else x, p[0].flatten(0, 1), bias, layer.stride,
                             layer.padding, layer.dilation, k if stacked else 1).unflatten(1, (k, -1))
            elif isinstance(layer, nn.Linear):
                x = x.movedim(1, 0) if stacked else x.expand(k, *x.shape)
                x = torch.bmm(x, p[0].transpose(1, 2))
                x = (x + p[1].unsqueeze(1) if len(p) > 1 else x).movedim(0, 1)
            elif isinstance(layer, nn.GroupNorm):
                x = F.group_norm(x.flatten(1, 2), k * layer.num_groups, p[0].flatten(), p[1].flatten(),
                                 layer.eps).unflatten(1, (k, -1))
            elif isinstance(layer, nn.Flatten) and not raw:
                x = x.flatten(2)
            elif raw or x.dim() < 5:
                x = layer(x)
            else:  # per-channel layers (pooling) see the K learners' channels side by side
                x = layer(x.flatten(1, 2)).unflatten(1, (k, -1))
            raw = raw and not p
            stacked = stacked or not raw
        return x.movedim(1, 0)


def linear_head(encoder: Stacked, features: int, outputs: int) -> StackedMLP:
    """The linear head on ``encoder``'s features: without a bias where there is no encoder (a table)."""
    return StackedMLP([features, outputs], 0, bias=not (isinstance(encoder, StackedMLP) and encoder.size == 0))


def as_one_mlp(encoder: Stacked, head: StackedMLP) -> StackedMLP | None:
    """An MLP encoder followed by an MLP head, as one MLP over the same parameter columns (else None)."""
    if not isinstance(encoder, StackedMLP):
        return None
    return StackedMLP([*encoder.dims, *head.dims[1:]], encoder.relu_layers, head.bias)


def _leaves(module: nn.Module) -> list[nn.Module]:
    children = list(module.children())
    return [leaf for child in children for leaf in _leaves(child)] if children else [module]


class ChannelsFirst(nn.Module):
    """MiniGrid's ``[…, H, W, C]`` integer codes → float ``[…, C, H, W]``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.float().movedim(-1, -3)


def MinigridCNN() -> nn.Sequential:
    """The 2020 code's MiniGrid encoder: 7×7×3 integer codes → 64 features."""
    return nn.Sequential(
        ChannelsFirst(), nn.Conv2d(3, 16, 2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 2), nn.ReLU(), nn.Conv2d(32, 64, 2), nn.ReLU(), nn.Flatten(),
    )


def MinatarCNN(channels: int) -> nn.Sequential:
    """Young & Tian's (2019) MinAtar network: 10×10×C binary images, one 3×3 convolution of 16 → 128 features."""
    return nn.Sequential(ChannelsFirst(), nn.Conv2d(channels, 16, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(16 * 8 * 8, 128), nn.ReLU())


Stacked = StackedMLP | StackedModule
NETWORKS = ("mlp", "table", "minigrid_cnn", "minatar_cnn", "mnist_cnn")


def build(network: str, obs_shape: tuple[int, ...], hidden: tuple[int, ...],
          relu_features: bool = False) -> tuple[Stacked, int, Stacked]:
    """``(policy encoder, its feature size, value network)`` of a named architecture.

    The original's Beta bidders have no ReLU after the encoder's last layer (``MLP([d, 16])`` is one
    Linear layer); its categorical policies do (``relu_features``). ``table`` (one-hot observations): no
    encoder, and the heads on it get no bias (``linear_head``), so every state's bids and value are parameters of its
    own; learning in one state moves no other's (``hidden`` is not used).
    """
    if network == "table":
        d = math.prod(obs_shape)
        return StackedMLP([d], 0), d, StackedMLP([d, 1], 0, bias=False)
    if network == "mlp":
        d, h = math.prod(obs_shape), list(hidden)
        return StackedMLP([d, *h], len(h) - (not relu_features)), h[-1], StackedMLP([d, *h, 1], len(h))
    if network == "minigrid_cnn":
        return StackedModule(MinigridCNN), 64, StackedModule(lambda: nn.Sequential(MinigridCNN(), nn.Linear(64, 1)))
    if network == "minatar_cnn":
        c = obs_shape[-1]
        return StackedModule(lambda: MinatarCNN(c)), 128, StackedModule(
            lambda: nn.Sequential(MinatarCNN(c), nn.Linear(128, 1)))
    if network == "mnist_cnn":  # as in the 2020 code: the bidder's encoder has 32 outputs, the value function 1
        from societal.environments.mnist_classifier import mnist_cnn

        return StackedModule(lambda: mnist_cnn(32)), 32, StackedModule(lambda: mnist_cnn(1))
    raise ValueError(f"unknown network {network!r}; allowed: {', '.join(NETWORKS)}")
