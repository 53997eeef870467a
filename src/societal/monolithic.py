"""The monolithic baseline: one categorical policy over the primitives, trained with PPO and GAE.

It is the paper's flat baseline (over literal actions), its hierarchical baseline (over options),
and the agent that pre-trains options. It shares the networks, the PPO update and the run outputs
of a society: it is a single learner (K = 1) whose head has one logit per primitive.

``factorized``: the follow-up's factorized PPO (its §6 baseline): one MLP per primitive, each giving that
primitive's logit, so that no weight is shared between choices, while the softmax still couples them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from societal.networks import UNGROUPED, Grouped, StackedMLP, Ungrouped, as_one_mlp, build, linear_head


class Monolithic(nn.Module):
    """A categorical policy and a value function over ``num_primitives`` choices."""

    def __init__(self, obs_shape: tuple[int, ...] | list[int], num_primitives: int,
                 hidden: tuple[int, ...] | list[int] = (16,), network: str = "mlp", num_learners: int = 1,
                 factorized: bool = False) -> None:
        super().__init__()
        self.spec = dict(obs_shape=list(obs_shape), num_primitives=num_primitives, hidden=list(hidden),
                         network=network, **({"factorized": True} if factorized else {}))
        # More than one learner only to run several trained policies in one pass (stacked options).
        self.obs_ndim, self.num_primitives, self.num_learners = len(obs_shape), num_primitives, num_learners
        # The original's categorical policies have a ReLU before their output layer (MLP([d, 16, A])).
        self.encoder, features, self.value_net = build(network, tuple(obs_shape), tuple(hidden), relu_features=True)
        self.head = linear_head(self.encoder, features, num_primitives)
        self.factorized = factorized
        if factorized and network != "mlp":
            raise ValueError(f"a factorized policy is a set of MLPs; network must be 'mlp', got {network!r}")
        # where it exists, PPO computes gradients by hand
        self.policy_net = (FactorizedMLP(self.encoder.dims, num_primitives) if factorized
                           else as_one_mlp(self.encoder, self.head))
        self.split = self.policy_net.size if factorized else self.encoder.size + self.head.size
        self.theta = nn.Parameter(torch.empty(num_learners, self.split + self.value_net.size))
        with torch.no_grad():
            if factorized:
                self.policy_net.init_(self.theta[:, : self.split])
            else:
                self.encoder.init_(self.theta[:, : self.encoder.size])
                self.head.init_(self.theta[:, self.encoder.size : self.split])
            self.value_net.init_(self.value_theta)

    @property
    def value_theta(self) -> Tensor:
        return self.theta[:, self.split :]

    def logits(self, obs: Tensor) -> Tensor:
        """``[K, B, P]`` at ``obs [B, *obs_shape]`` (or ``[K, B, *obs_shape]``)."""
        batch_dims = obs.dim() - self.obs_ndim
        if self.factorized:
            return self.policy_net(self.theta[:, : self.split], obs, batch_dims)
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
            choices = torch.arange(logits.shape[-1], device=logits.device)
            one_hot = (action.long()[..., None] == choices).to(p.dtype)  # one_hot() checks the range on the host
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


class FactorizedMLP:
    """P MLPs ``dims[0] → … → dims[-1] → 1`` (ReLU after each hidden layer) whose outputs are P logits, with
    ``StackedMLP``'s interface: learner k's parameters are row k, P blocks of columns, one per MLP."""

    def __init__(self, dims: list[int], choices: int) -> None:
        self.one, self.choices = StackedMLP([*dims, 1], len(dims) - 1), choices
        self.size, self.dims = choices * self.one.size, [dims[0], choices]

    def rows(self, theta: Tensor) -> Tensor:
        """``[K, P·size]`` → ``[K·P, size]``: each MLP its own row."""
        return theta.reshape(-1, self.one.size)

    @torch.no_grad()
    def init_(self, theta: Tensor) -> None:
        rows = self.rows(theta).clone()  # theta may be a slice of the agent's parameters, where rows cannot be a view
        self.one.init_(rows)
        theta.copy_(rows.view_as(theta))

    def __call__(self, theta: Tensor, x: Tensor, batch_dims: int = 1) -> Tensor:
        return self.forward_saving(theta, x, batch_dims)[0]

    def forward_saving(self, theta: Tensor, x: Tensor, batch_dims: int = 2) -> tuple[Tensor, list[Tensor]]:
        if batch_dims == 2:  # learner k's inputs go to each of its P MLPs
            x = x.repeat_interleave(self.choices, 0)
        out, inputs = self.one.forward_saving(self.rows(theta), x, batch_dims)  # [K·P, B, 1]
        return out.view(len(theta), self.choices, -1).transpose(1, 2), inputs

    def backward_blocks(self, theta: Tensor, inputs: list[Tensor], grad_out: Tensor) -> list[Tensor]:
        """``∂L/∂θ [K, P·size]`` (the P MLPs' blocks side by side) as one block."""
        grad = grad_out.transpose(1, 2).reshape(-1, grad_out.shape[1], 1)
        return [self.one.backward(self.rows(theta), inputs, grad).view(len(theta), -1)]
