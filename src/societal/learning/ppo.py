"""PPO for K stacked learners at once (the paper's settings), equal to K independent PPO updates.

A learner is a row of an agent's parameter tensor: a society's primitive (whose samples are its
memoryless auctions: target U, advantage U − V(s), as in the paper's Algorithm 1), or a monolithic policy (K = 1;
target and advantage from GAE). Per learner k, on its own samples only, with target G:

    A ← (A − mean A) / (std A + ε)
    L_V = mean (V(s) − G)² + l2 · ‖θ_V‖²
    L_π = −mean min(ρ A, clip(ρ, 1 − ε_clip, 1 + ε_clip) A) − c_H · mean H[π(·|s)],   ρ = π(b|s) / π_old(b|s)

Each learner shuffles its own samples into its own minibatches, its policy gradient is clipped
to its own norm, and its Adam state and step count are its own, so stacking changes nothing
but speed. The value and the policy losses share one backward pass; their parameters are
disjoint, so this equals the original's value step followed by its policy step.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults


class Agent(Protocol):
    """What PPO needs of an agent: stacked parameters, policy columns first."""

    theta: Tensor  # [K, D]
    split: int  # columns [0, split) are the policy's, the rest the value function's

    @property
    def value_theta(self) -> Tensor: ...

    def log_prob_entropy(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]: ...

    def values(self, obs: Tensor) -> Tensor: ...


@dataclass
class Samples:
    """What PPO learns from: sample e of each learner was taken at ``obs[e // per_obs]``."""

    obs: Tensor  # [S, *obs_shape]
    action: Tensor  # [K, M]: a bid, or an action index
    target: Tensor  # [K, M]: value target
    advantage: Tensor  # [K, M], not yet normalised
    valid: Tensor  # [K, M] bool
    per_obs: int = 1


def minibatches(valid: Tensor, size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Each learner's valid samples in its own random order, ``size`` at a time.

    Yields ``(index [K, size], weight [K, size])``: ``weight`` averages over each learner's real
    samples; a learner's last minibatch may be smaller, and is padded with weight 0 so that every
    minibatch has the same shape.
    """
    m = valid.shape[1]
    order = (torch.rand(valid.shape, device=valid.device) + (~valid).float()).argsort(1)
    count = valid.sum(1, keepdim=True)
    batches = -(-int(count.max()) // size)
    order = order.repeat(1, -(-batches * size // m))
    for start in range(0, batches * size, size):
        real = (torch.arange(start, start + size, device=valid.device) < count).float()
        yield order[:, start : start + size], real / real.sum(1, keepdim=True).clamp(min=1)


class PPO:
    """The optimiser state of an agent's K learners (one Adam each, stacked) and their update."""

    def __init__(self, agent: Agent, *, policy_lr: float, value_lr: float, clip: float, entropy: float,
                 value_l2: float, max_grad_norm: float, minibatch: int, epochs: int = 1,
                 compile: bool = False) -> None:
        self.agent, self.minibatch, self.epochs = agent, minibatch, epochs
        self.clip, self.entropy, self.value_l2, self.max_grad_norm = clip, entropy, value_l2, max_grad_norm
        theta = agent.theta
        self.lr = torch.full((1, theta.shape[1]), value_lr, device=theta.device)
        self.lr[:, : agent.split] = policy_lr
        self.m, self.v = torch.zeros_like(theta), torch.zeros_like(theta)
        self.t = torch.zeros(theta.shape[0], 1, device=theta.device)  # Adam steps taken by each learner
        # torch.compile fuses the ~250 small operations of a minibatch step (about 20 s to compile).
        self.step = torch.compile(self._step) if compile else self._step

    def state_dict(self) -> dict:
        return {"m": self.m, "v": self.v, "t": self.t}

    def load_state_dict(self, state: dict) -> None:
        for k in ("m", "v", "t"):
            getattr(self, k).copy_(state[k])

    def update(self, samples: Samples, lr_scale: float = 1.0, entropy: float | None = None) -> dict[str, float]:
        """One PPO update on ``samples``, learning rates × ``lr_scale``, entropy coefficient ``entropy`` (default:
        the constructor's)."""
        obs, c, valid = samples.obs, samples.per_obs, samples.valid
        with torch.no_grad():
            old_log_prob = self.agent.log_prob_entropy(obs.repeat_interleave(c, 0), samples.action)[0]
            n = valid.sum(1, keepdim=True)
            mean = (samples.advantage * valid).sum(1, keepdim=True) / n.clamp(min=1)
            std = (((samples.advantage - mean) ** 2 * valid).sum(1, keepdim=True) / (n - 1).clamp(min=1)).sqrt()
            advantage = (samples.advantage - mean) / (std + torch.finfo(std.dtype).eps)

        lr = self.lr * lr_scale
        entropy_coef = torch.tensor(self.entropy if entropy is None else entropy, device=obs.device)
        stats, batches = torch.zeros(3, device=obs.device), 0
        self.nonfinite_gradient = torch.zeros(len(valid), dtype=torch.bool, device=obs.device)
        for _ in range(self.epochs):
            for index, weight in minibatches(valid, self.minibatch):
                step_stats, bad = self.step(obs[index // c], samples.action.gather(1, index),
                                            old_log_prob.gather(1, index), advantage.gather(1, index),
                                            samples.target.gather(1, index), weight, lr, entropy_coef)
                stats += step_stats
                self.nonfinite_gradient |= bad
                batches += 1
        value_loss, policy_entropy, clip_fraction = (stats / max(batches, 1)).tolist()
        return {"value_loss": value_loss, "policy_entropy": policy_entropy, "clip_fraction": clip_fraction}

    def _step(self, x: Tensor, action: Tensor, old_log_prob: Tensor, advantage: Tensor, target: Tensor,
              weight: Tensor, lr: Tensor, entropy_coef: Tensor) -> tuple[Tensor, Tensor]:
        """One PPO minibatch step of every learner (Adam on the rows whose learner has data). Returns the mean value
        error, entropy and clip fraction, and which learners' gradients were not finite."""
        agent, theta = self.agent, self.agent.theta
        with torch.enable_grad():
            log_prob, entropy = agent.log_prob_entropy(x, action)
            ratio = torch.exp(log_prob - old_log_prob)
            surrogate = torch.min(ratio * advantage, ratio.clamp(1 - self.clip, 1 + self.clip) * advantage)
            value_error = (agent.values(x) - target).square()
            loss = ((value_error - surrogate - entropy_coef * entropy) * weight).sum()
            loss = loss + self.value_l2 * agent.value_theta.square().sum()
            (grad,) = torch.autograd.grad(loss, theta)
        with torch.no_grad():
            policy_grad = grad[:, : agent.split]
            policy_grad *= (self.max_grad_norm / (policy_grad.norm(dim=1, keepdim=True) + 1e-6)).clamp(max=1.0)
            (b1, b2), on = BETAS, (weight.sum(1, keepdim=True) > 0).to(grad.dtype)
            self.t += on
            self.m.mul_(1 - (1 - b1) * on).addcmul_(grad, (1 - b1) * on)
            self.v.mul_(1 - (1 - b2) * on).addcmul_(grad * grad, (1 - b2) * on)
            steps = self.t.clamp(min=1)
            denom = (self.v / (1 - b2**steps)).sqrt_().add_(EPS)
            theta.addcdiv_(self.m * (lr * on / (1 - b1**steps)), denom, value=-1.0)
            clipped = ((ratio - 1).abs() > self.clip).to(weight.dtype)
            stats = torch.stack([(v * weight).sum(1).mean() for v in (value_error, entropy, clipped)])
            return stats, ~torch.isfinite(grad).all(1)
