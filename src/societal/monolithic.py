"""The monolithic baseline: one categorical policy over the primitives, trained with PPO and GAE.

It is the paper's flat baseline (over literal actions), its hierarchical baseline (over options),
and the agent that pre-trains options. It shares the networks, the PPO update and the run outputs
of a society: it is a single learner (K = 1) whose head has one logit per primitive.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from societal.networks import UNGROUPED, Grouped, StackedMLP, Ungrouped, as_one_mlp, build


class Monolithic(nn.Module):
    """A categorical policy and a value function over ``num_primitives`` choices."""

    def __init__(self, obs_shape: tuple[int, ...] | list[int], num_primitives: int,
                 hidden: tuple[int, ...] | list[int] = (16,), network: str = "mlp", num_learners: int = 1) -> None:
        super().__init__()
        self.spec = dict(obs_shape=list(obs_shape), num_primitives=num_primitives, hidden=list(hidden),
                         network=network)
        # More than one learner only to run several trained policies in one pass (stacked options).
        self.obs_ndim, self.num_primitives, self.num_learners = len(obs_shape), num_primitives, num_learners
        # The original's categorical policies have a ReLU before their output layer (MLP([d, 16, A])).
        self.encoder, features, self.value_net = build(network, tuple(obs_shape), tuple(hidden), relu_features=True)
        self.head = StackedMLP([features, num_primitives], relu_layers=0)
        self.policy_net = as_one_mlp(self.encoder, self.head)  # where it exists, PPO computes gradients by hand
        self.split = self.encoder.size + self.head.size
        self.theta = nn.Parameter(torch.empty(num_learners, self.split + self.value_net.size))
        with torch.no_grad():
            self.encoder.init_(self.theta[:, : self.encoder.size])
            self.head.init_(self.theta[:, self.encoder.size : self.split])
            self.value_net.init_(self.value_theta)

    @property
    def value_theta(self) -> Tensor:
        return self.theta[:, self.split :]

    def logits(self, obs: Tensor) -> Tensor:
        """``[K, B, P]`` at ``obs [B, *obs_shape]`` (or ``[K, B, *obs_shape]``)."""
        batch_dims = obs.dim() - self.obs_ndim
        features = self.encoder(self.theta[:, : self.encoder.size], obs, batch_dims)
        return self.head(self.theta[:, self.encoder.size : self.split], features, 2)

    def log_prob_entropy(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        return self.head_terms(self.logits(obs), action)[:2]

    @staticmethod
    def head_terms(logits: Tensor, action: Tensor, group: Grouped | Ungrouped = UNGROUPED
                   ) -> tuple[Tensor, Tensor, Callable[[Tensor, Tensor], Tensor]]:
        """``log π(a)``, ``H[π]`` at ``logits [K, M, P]`` (per state, ``[K, S, P]``, where the samples are ``group``ed),
        and the map from ``(∂L/∂ log π, ∂L/∂H)`` to ``∂L/∂logits``: ∂ log π(a)/∂z = onehot(a) − π and
        ∂H/∂z = −π (log π + H)."""
        log_p = torch.log_softmax(logits, -1)
        p = log_p.exp()
        log_p, p, entropy = group.pick(log_p), group.pick(p), group.pick(-(p * log_p).sum(-1))

        def backward(grad_log_prob: Tensor, grad_entropy: Tensor) -> Tensor:
            one_hot = torch.nn.functional.one_hot(action.long(), logits.shape[-1]).to(p.dtype)
            return group.total(grad_log_prob[..., None] * (one_hot - p)
                               - grad_entropy[..., None] * p * (log_p + entropy[..., None]))

        return log_p.gather(-1, action.long()[..., None])[..., 0], entropy, backward

    def values(self, obs: Tensor) -> Tensor:
        return self.value_net(self.value_theta, obs, obs.dim() - self.obs_ndim)[..., 0]

    @torch.no_grad()
    def act(self, obs: Tensor, greedy: bool = False) -> Tensor:
        """A sampled primitive for each observation (``greedy``: the most probable): ``[B]``."""
        logits = self.logits(obs)[0]
        return logits.argmax(-1) if greedy else torch.distributions.Categorical(logits=logits).sample()
