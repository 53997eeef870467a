"""PPO for K stacked learners at once (the paper's settings), equal to K independent PPO updates.

A learner is a row of an agent's parameter tensor: a society's primitive (whose samples are its
memoryless auctions: target U, advantage U − V(s), as in the paper's Algorithm 1), or a monolithic policy (K = 1;
target and advantage from GAE). Per learner k, on its own samples only, with target G:

    A ← (A − mean A) / (std A + ε)
    L_V = mean (V(s) − G)² + l2 · ‖θ_V‖²
    L_π = −mean min(ρ A, clip(ρ, 1 − ε_clip, 1 + ε_clip) A) − c_H · mean H[π(·|s)],   ρ = π(b|s) / π_old(b|s)

Each learner draws its own minibatches from its own samples, its policy gradient is clipped
to its own norm, and its Adam state and step count are its own, so stacking changes nothing
but speed. The value and the policy losses share one backward pass; their parameters are
disjoint, so this equals the original's value step followed by its policy step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from societal.learning.compiling import Background, settings
from societal.networks import UNGROUPED, Grouped, Stacked, StackedMLP, Ungrouped

BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults
# ∂L/∂θ as (the policy's, the value function's) blocks of columns in θ's order and, for the statistics,
# (V − G)², H and ρ
Gradient = tuple[tuple[list[Tensor], list[Tensor]], Tensor, Tensor, Tensor]


class Agent(Protocol):
    """What PPO needs of an agent: stacked parameters, policy columns first."""

    theta: Tensor  # [K, D]
    split: int  # columns [0, split) are the policy's, the rest the value function's
    policy_net: StackedMLP | None  # the policy's columns as one MLP, where they are one (gradients by hand)
    value_net: Stacked

    @property
    def value_theta(self) -> Tensor: ...

    def log_prob_entropy(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]: ...

    def head_terms(self, out: Tensor, action: Tensor, group: Grouped | Ungrouped
                   ) -> tuple[Tensor, Tensor, Callable[[Tensor, Tensor], Tensor]]:
        """``log π(action)``, ``H[π]`` from ``policy_net``'s output (per state where the samples are ``group``ed),
        and ``(∂L/∂ log π, ∂L/∂H) ↦ ∂L/∂output``."""
        ...

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


def minibatches(valid: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Each learner's valid samples in a random order, cut into minibatches of ``size``.

    One random permutation of the sample positions serves every learner (a sort per learner costs more than the
    rest of the update's bookkeeping); each learner keeps its own valid samples from it, in that order. Returns
    ``(index, weight)``, each ``[batches, K, size]``: ``weight`` averages over each learner's real samples; a
    learner's last minibatch may be smaller, and is padded with weight 0 so that every minibatch has the same shape.
    """
    k, m = valid.shape
    perm = torch.randperm(m, device=valid.device)
    kept = valid[:, perm]
    count = kept.sum(1, keepdim=True)
    rank = torch.where(kept, kept.cumsum(1) - 1, count + (~kept).cumsum(1) - 1)  # valid ones first, order kept
    order = torch.empty_like(rank).scatter_(1, rank, perm.expand(k, m))
    batches = -(-int(count.max()) // size)
    order = order.repeat(1, -(-batches * size // m))[:, : batches * size]
    real = (torch.arange(batches * size, device=valid.device) < count).float().view(k, batches, size)
    weight = real / real.sum(2, keepdim=True).clamp(min=1)
    return order.view(k, batches, size).transpose(0, 1).contiguous(), weight.transpose(0, 1).contiguous()


def grouped(x: Tensor, states: int, codes: Tensor | None = None) -> tuple[Grouped | Ungrouped, Tensor]:
    """Per-learner inputs ``x [K, M, …]`` as groups of samples and the inputs to compute: with fewer states than
    samples (state indices), each state once; ``codes [S, D]``: what the agent sees of each state index."""
    if x.is_floating_point():
        return UNGROUPED, x
    if codes is not None:
        return Grouped(x[..., 0], len(codes)), codes.expand(len(x), *codes.shape)
    if states >= x.shape[1]:
        return UNGROUPED, x
    return Grouped(x[..., 0], states), torch.arange(states, device=x.device).expand(len(x), -1)[..., None]


class PPO:
    """The optimiser state of an agent's K learners (one Adam each, stacked) and their update; ``codes``: what the
    agent sees of the state indices its samples may hold (``VecEnv.codes``; None: one-hot)."""

    def __init__(self, agent: Agent, *, policy_lr: float, value_lr: float, clip: float, entropy: float,
                 value_l2: float, max_grad_norm: float, minibatch: int, epochs: int = 1,
                 compile: bool = False, codes: Tensor | None = None) -> None:
        self.agent, self.minibatch, self.epochs, self.codes = agent, minibatch, epochs, codes
        self.clip, self.entropy, self.value_l2, self.max_grad_norm = clip, entropy, value_l2, max_grad_norm
        theta = agent.theta
        self.lr = torch.full((1, theta.shape[1]), value_lr, device=theta.device)
        self.lr[:, : agent.split] = policy_lr
        self.m, self.v = torch.zeros_like(theta), torch.zeros_like(theta)
        self.t = torch.zeros(theta.shape[0], 1, device=theta.device)  # Adam steps taken by each learner
        self.gradient = self.analytic_gradient if agent.policy_net is not None else self.autograd_gradient
        self.prepare, self.step, self.background, self.compiled = self._prepare, self._step, None, None
        if compile and agent.policy_net is not None:
            self.background = Background(self._step)  # prepare, once per update, costs more to compile
        elif compile:
            options = settings()
            self.prepare, self.step = (torch.compile(f, options=options) for f in (self._prepare, self._step))

    def state_dict(self) -> dict:
        return {"m": self.m, "v": self.v, "t": self.t}

    def load_state_dict(self, state: dict) -> None:
        for k in ("m", "v", "t"):
            getattr(self, k).copy_(state[k])

    def update(self, samples: Samples, lr_scale: float = 1.0, entropy: float | None = None) -> dict[str, float]:
        """One PPO update on ``samples``, learning rates × ``lr_scale``, entropy coefficient ``entropy`` (default:
        the constructor's)."""
        obs, c, valid = samples.obs, samples.per_obs, samples.valid
        old_log_prob, advantage = self.prepare(obs.repeat_interleave(c, 0), samples.action, samples.advantage, valid)
        lr = self.lr * lr_scale
        entropy_coef = torch.tensor(self.entropy if entropy is None else entropy, device=obs.device)
        stats, batches = torch.zeros(3, device=obs.device), 0
        self.nonfinite_gradient = torch.zeros(len(valid), dtype=torch.bool, device=obs.device)
        for _ in range(self.epochs):
            index, weight = minibatches(valid, self.minibatch)
            n, k, size = index.shape
            columns = index.transpose(0, 1).flatten(1).expand(4, -1, -1)
            taken = torch.stack([samples.action, old_log_prob, advantage, samples.target]).gather(2, columns)
            # one tensor per minibatch: a compiled step's call costs per argument
            data = torch.cat([taken.view(4, k, n, size).permute(2, 0, 1, 3), weight[:, None]], 1)
            at = index // c
            calls = [(self.agent.theta, self.m, self.v, self.t, obs, at[i], data[i], lr, entropy_coef, stats,
                      self.nonfinite_gradient) for i in range(len(index))]
            step = self.compiled if self.compiled is not None and self.compiled.fits(calls[0]) else self.step
            for args in calls:
                step(*args)
            batches += len(index)
        if self.background is not None and self.compiled is None:  # the compiled step from the next update on
            self.compiled = self.background.ready(calls[0])
        value_loss, policy_entropy, clip_fraction = (stats / max(batches, 1)).tolist()
        return {"value_loss": value_loss, "policy_entropy": policy_entropy, "clip_fraction": clip_fraction}

    def finish_compiling(self) -> None:
        """Wait for a compile in progress (seconds): a process that exits while the compiler works can abort."""
        if self.background is not None:
            self.background.wait()

    @torch.no_grad()
    def _prepare(self, obs: Tensor, action: Tensor, advantage: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
        """The log-probabilities of the actions (taken at ``obs``) before the update, and each learner's normalised
        advantages."""
        agent = self.agent
        if agent.policy_net is None:
            old_log_prob = agent.log_prob_entropy(obs, action)[0]
        else:
            old_log_prob = self.policy_terms(agent.theta, obs.expand(len(action), *obs.shape), action)[2]
        n = valid.sum(1, keepdim=True)
        mean = (advantage * valid).sum(1, keepdim=True) / n.clamp(min=1)
        std = (((advantage - mean) ** 2 * valid).sum(1, keepdim=True) / (n - 1).clamp(min=1)).sqrt()
        return old_log_prob, (advantage - mean) / (std + torch.finfo(std.dtype).eps)

    def _step(self, theta: Tensor, m: Tensor, v: Tensor, t: Tensor, obs: Tensor, at: Tensor, data: Tensor,
              lr: Tensor, entropy_coef: Tensor, stats: Tensor, nonfinite: Tensor) -> None:
        """One PPO minibatch step of every learner on the samples taken at ``obs[at]`` (``data [5, K, size]``: their
        actions, old log-probabilities, advantages, targets and weights): Adam (moments ``m``, ``v``, step counts
        ``t``) on the rows of ``theta`` whose learner has data. Adds the mean value error, entropy and clip fraction
        to ``stats``, and marks the learners whose gradients were not finite in ``nonfinite``."""
        action, old_log_prob, advantage, target, weight = data
        (policy, value), value_error, entropy, ratio = self.gradient(theta, obs[at], action, old_log_prob, advantage,
                                                                     target, weight, entropy_coef)
        with torch.no_grad():
            # clipped block by block and concatenated once: Inductor then writes each block once (a clipped slice
            # of the concatenation was recomputed in every use: a fifth of Taxi's compiled step)
            norm = sum(g.square().sum(1, keepdim=True) for g in policy).sqrt()
            clip = (self.max_grad_norm / (norm + 1e-6)).clamp(max=1.0)
            grad = torch.cat([g * clip for g in policy] + value, 1)
            (b1, b2), on = BETAS, (weight.sum(1, keepdim=True) > 0).to(grad.dtype)
            t += on
            m.mul_(1 - (1 - b1) * on).addcmul_(grad, (1 - b1) * on)
            nonfinite |= ~torch.isfinite(m).all(1)  # exactly where a gradient was not finite; read in Adam's pass
            v.mul_(1 - (1 - b2) * on).addcmul_(grad * grad, (1 - b2) * on)
            steps = t.clamp(min=1)
            denom = (v / (1 - b2**steps)).sqrt_().add_(EPS)
            theta.addcdiv_(m * (lr * on / (1 - b1**steps)), denom, value=-1.0)
            clipped = ((ratio - 1).abs() > self.clip).to(weight.dtype)
            stats += torch.stack([(x * weight).sum(1).mean() for x in (value_error, entropy, clipped)])

    def autograd_gradient(self, theta: Tensor, x: Tensor, action: Tensor, old_log_prob: Tensor, advantage: Tensor,
                          target: Tensor, weight: Tensor, entropy_coef: Tensor) -> Gradient:
        """The gradient of the loss above by autograd (``theta`` is the agent's own)."""
        agent = self.agent
        with torch.enable_grad():
            log_prob, entropy = agent.log_prob_entropy(x, action)
            ratio = torch.exp(log_prob - old_log_prob)
            surrogate = torch.min(ratio * advantage, ratio.clamp(1 - self.clip, 1 + self.clip) * advantage)
            value_error = (agent.values(x) - target).square()
            loss = ((value_error - surrogate - entropy_coef * entropy) * weight).sum()
            loss = loss + self.value_l2 * agent.value_theta.square().sum()
            (grad,) = torch.autograd.grad(loss, theta)
        parts = ([grad[:, : agent.split]], [grad[:, agent.split :]])
        return parts, value_error.detach(), entropy.detach(), ratio.detach()

    def policy_terms(self, theta: Tensor, x: Tensor, action: Tensor) -> tuple:
        """For MLP agents at per-learner inputs ``x``: how the samples are grouped, the inputs computed (each state
        once where states are fewer than samples), ``log π(action)``, ``H``, the head's backward map and every
        policy layer's input."""
        group, x = grouped(x, self.agent.policy_net.dims[0], self.codes)
        out, inputs = self.agent.policy_net.forward_saving(theta[:, : self.agent.split], x)
        return group, x, *self.agent.head_terms(out, action, group), inputs

    def analytic_gradient(self, theta: Tensor, x: Tensor, action: Tensor, old_log_prob: Tensor, advantage: Tensor,
                          target: Tensor, weight: Tensor, entropy_coef: Tensor) -> Gradient:
        """The same by the chain rule, for MLP agents (no autograd graph: a few fused kernels when compiled).
        With w a sample's weight in its learner's minibatch:

            ∂L/∂V = 2 w (V − G),    ∂L/∂H = −w c_H,    ∂L/∂θ_V += 2 l2 θ_V,
            ∂L/∂ log π = −w ρ A where ρA ≤ clip(ρ)A (the unclipped term is the minimum), else 0,

        then back through the policy's head (``head_terms``) and both MLPs (``StackedMLP.backward_blocks``).
        """
        agent, policy, value_theta = self.agent, theta[:, : self.agent.split], theta[:, self.agent.split :]
        group, x, log_prob, entropy, head_backward, policy_inputs = self.policy_terms(theta, x, action)
        value, value_inputs = agent.value_net.forward_saving(value_theta, x)
        ratio = torch.exp(log_prob - old_log_prob)
        unclipped = ratio * advantage <= ratio.clamp(1 - self.clip, 1 + self.clip) * advantage
        value_error = group.pick(value[..., 0]) - target
        grad_out = head_backward(-weight * advantage * ratio * unclipped, -weight * entropy_coef)
        grad_value = group.total(2 * weight * value_error)[..., None]
        value_blocks = agent.value_net.backward_blocks(value_theta, value_inputs, grad_value)
        value_thetas = value_theta.split([g.shape[1] for g in value_blocks], 1)
        grad = (agent.policy_net.backward_blocks(policy, policy_inputs, grad_out),
                [g + 2 * self.value_l2 * w for g, w in zip(value_blocks, value_thetas)])
        return grad, value_error.square(), entropy, ratio
