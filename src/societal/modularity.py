"""What a transfer changes, primitive by primitive, and the follow-up's modularity criterion as a test.

The follow-up (Chang, Kaushik, Levine, Griffiths, ICML 2021, §4–5) calls credit assignment modular when the
feedback to different decisions is independent given the learner's previous weights: the update of the
mechanism that chooses one action must not depend on the mechanisms that choose the others. Here that is
measured directly on a PPO update: the rollout, and what was computed from it with the previous weights
(utilities, advantages, old log-probabilities), stay fixed; primitive k's policy weights are perturbed; does
primitive j's gradient move? A society's bidders each learn from their own bids and utilities (zero off the
diagonal); a categorical policy's softmax couples every logit to every other (monolithic and factorized PPO).
"""

from __future__ import annotations

import torch
from torch import Tensor

from societal.learning.ppo import PPO, Samples
from societal.monolithic import Monolithic
from societal.society import Society

Parts = dict[str, tuple[int, Tensor]]  # name → (row of θ, its policy columns)


def policy_parts(agent: Society | Monolithic) -> Parts:
    """The policy parameters that belong to each primitive alone (``p<k>``, a society's copies ``p<k>.<c>``) and
    those every primitive shares (``shared``, a monolithic policy's encoder)."""
    if isinstance(agent, Society):
        p, cloned = agent.num_primitives, agent.num_learners == agent.num_primitives
        return {f"p{k % p}" + ("" if cloned else f".{k // p}"): (k, torch.arange(agent.split))
                for k in range(agent.num_learners)}
    p = agent.num_primitives
    if agent.factorized:
        size = agent.policy_net.one.size
        return {f"p{k}": (0, torch.arange(k * size, (k + 1) * size)) for k in range(p)}
    e, features = agent.encoder.size, agent.head.dims[0]
    w = e + torch.arange(features * p).view(features, p)  # the output layer: a column and a bias per primitive
    return {**{f"p{k}": (0, torch.cat([w[:, k], torch.tensor([e + features * p + k])])) for k in range(p)},
            "shared": (0, torch.arange(e))}


def changed(before: Tensor, after: Tensor, parts: Parts, threshold: float = 1e-3) -> dict[str, tuple[float, float]]:
    """Per part, from ``before`` to ``after`` (θs): the mean |Δw| of its weights, and the % that moved by more than
    ``threshold``."""
    moved = {name: (after[row, cols] - before[row, cols]).abs() for name, (row, cols) in parts.items()}
    return {name: (float(d.mean()), float(100 * (d > threshold).float().mean())) for name, d in moved.items()}


def gradient_dependence(ppo: PPO, samples: Samples, scale: float = 0.1, seed: int = 0) -> dict[str, dict[str, float]]:
    """``[j][k]``: the relative change of primitive j's policy gradient (whole batch, PPO's loss) when primitive
    k's policy weights get Gaussian noise of std ``scale``, everything computed from the previous weights held
    fixed. The criterion holds where every entry off the diagonal is 0."""
    agent, theta = ppo.agent, ppo.agent.theta.detach().clone()
    old_log_prob, advantage = ppo.prepare(samples.obs.repeat_interleave(samples.per_obs, 0), samples.action,
                                          samples.advantage, samples.valid)
    k, m = samples.valid.shape
    x = samples.obs[(torch.arange(m) // samples.per_obs).expand(k, -1)]  # [K, M, …]: each learner's samples
    weight = samples.valid / samples.valid.sum(1, keepdim=True).clamp(min=1)
    entropy = torch.tensor(ppo.entropy)

    def gradient(th: Tensor) -> Tensor:
        with torch.no_grad():
            agent.theta.copy_(th)  # the autograd path differentiates the agent's own parameters
        policy, value = ppo.gradient(agent.theta, x, samples.action, old_log_prob, advantage, samples.target,
                                     weight, entropy)[0]
        return torch.cat(policy + value, 1).detach()

    parts, base = policy_parts(agent), gradient(theta)
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, dict[str, float]] = {j: {} for j in parts}
    for k, (row, cols) in parts.items():
        moved = theta.clone()
        moved[row, cols] += scale * torch.randn(len(cols), generator=generator)
        grad = gradient(moved)
        for j, (r, c) in parts.items():
            out[j][k] = float((grad[r, c] - base[r, c]).norm() / base[r, c].norm().clamp(min=1e-12))
    with torch.no_grad():
        agent.theta.copy_(theta)
    return out
