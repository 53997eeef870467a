"""The society: every bidder's network stacked into one tensor and computed in one batched pass.

A society of P primitives with redundancy r has N = P·r bidders. Bidder n acts as primitive
``n % P`` (the original's ids: clone j of primitive i is ``i + j·P``). Its weights belong to
learner ``n % K``:

* cloned (the default): K = P learners, each sampled r times: clones share weights but draw
  independent bids;
* independently redundant: K = P·r learners, one per bidder;
* solitary: r = 1, so K = P = N.

Each learner is a Beta bidding policy over [0, 1] (its network gives the mean and the precision, as
in the paper) and a value function. All parameters of all K learners live in one tensor of shape
``[K, D]`` (row k = learner k; see ``networks.py``), so a forward pass, an Adam step or a gradient
clip is a handful of tensor operations whatever K is.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from societal.mechanisms import auction
from societal.networks import UNGROUPED, Grouped, Ungrouped, as_one_mlp, build, linear_head

BID_EPS = 1e-6  # bids are clamped to [ε, 1-ε] before log-probabilities


def beta_terms(alpha: Tensor, beta: Tensor, bid: Tensor, group: Grouped | Ungrouped = UNGROUPED
               ) -> tuple[Tensor, Tensor, tuple]:
    """``(log π(bid), H[π], what ``beta_gradients`` needs)`` for π = Beta(α, β); bids clamped to [ε, 1 − ε]:

        log π(b) = (α−1) log b + (β−1) log(1−b) − log B(α, β)
        H[π]     = log B(α, β) − (α−1) ψ(α) − (β−1) ψ(β) + (α+β−2) ψ(α+β)

    With a ``Grouped`` ``group``, α and β are per state and the bids per sample.
    """
    bid = bid.clamp(BID_EPS, 1 - BID_EPS)  # the 2020 code took log(0) at a float32 bid of exactly 0 or 1
    log_bid, log_1m_bid, total = bid.log(), (-bid).log1p(), alpha + beta
    psi_a, psi_b, psi_t = torch.digamma(alpha), torch.digamma(beta), torch.digamma(total)
    log_norm = torch.lgamma(alpha) + torch.lgamma(beta) - torch.lgamma(total)
    log_prob = group.pick(alpha - 1) * log_bid + group.pick(beta - 1) * log_1m_bid - group.pick(log_norm)
    entropy = group.pick(log_norm - (alpha - 1) * psi_a - (beta - 1) * psi_b + (total - 2) * psi_t)
    return log_prob, entropy, (alpha, beta, total, log_bid, log_1m_bid, psi_a, psi_b, psi_t, group)


def beta_gradients(saved: tuple, grad_log_prob: Tensor, grad_entropy: Tensor) -> tuple[Tensor, Tensor]:
    """``(∂L/∂α, ∂L/∂β)`` from ``∂L/∂ log π`` and ``∂L/∂H``; with ψ′ the trigamma function:

        ∂ log π / ∂α = log b − ψ(α) + ψ(α+β),        ∂H / ∂α = (α+β−2) ψ′(α+β) − (α−1) ψ′(α)

    and symmetrically for β with log(1 − b); summed over each state's samples where they are grouped.
    """
    alpha, beta, total, log_bid, log_1m_bid, psi_a, psi_b, psi_t, group = saved
    g_log_prob, g_entropy = group.total(grad_log_prob), group.total(grad_entropy)
    shared = (total - 2) * torch.polygamma(1, total)
    d_alpha = (group.total(grad_log_prob * log_bid) + g_log_prob * (psi_t - psi_a)
               + g_entropy * (shared - (alpha - 1) * torch.polygamma(1, alpha)))
    d_beta = (group.total(grad_log_prob * log_1m_bid) + g_log_prob * (psi_t - psi_b)
              + g_entropy * (shared - (beta - 1) * torch.polygamma(1, beta)))
    return d_alpha, d_beta


class BetaTerms(torch.autograd.Function):
    """``beta_terms`` as one autograd node instead of some thirty (with ``beta_gradients`` as its backward)."""

    @staticmethod
    def forward(ctx, alpha: Tensor, beta: Tensor, bid: Tensor) -> tuple[Tensor, Tensor]:
        log_prob, entropy, saved = beta_terms(alpha, beta, bid)
        ctx.save_for_backward(*saved[:-1])
        return log_prob, entropy

    @staticmethod
    def backward(ctx, grad_log_prob: Tensor, grad_entropy: Tensor) -> tuple[Tensor, Tensor, None]:
        return (*beta_gradients((*ctx.saved_tensors, UNGROUPED), grad_log_prob, grad_entropy), None)


def beta_log_prob_entropy(alpha: Tensor, beta: Tensor, bid: Tensor) -> tuple[Tensor, Tensor]:
    """``(log π(bid), H[π])`` for π = Beta(α, β); bids are clamped to [ε, 1 − ε] first."""
    return BetaTerms.apply(alpha, beta, bid)


def sample_beta(alpha_beta: Tensor, stream: np.random.Generator | None = None) -> Tensor:
    """A draw from each Beta(α, β) of ``alpha_beta [..., 2]``."""
    return beta_of(draw_gammas(alpha_beta, stream))


def draw_gammas(alpha_beta: Tensor, stream: np.random.Generator | None = None) -> Tensor:
    """X ~ Gamma(α) and Y ~ Gamma(β) for each (α, β) of ``alpha_beta [..., 2]``, from torch's stream or (CPU
    tensors) NumPy's ``stream``, whose gamma draws cost two thirds of torch's."""
    if stream is None:
        return torch._standard_gamma(alpha_beta)
    values = alpha_beta.numpy()
    return torch.from_numpy(stream.standard_gamma(values, dtype=values.dtype))


def beta_of(xy: Tensor) -> Tensor:
    """X / (X + Y) of the gamma draws ``xy [..., 2]``: a Beta(α, β) draw, kept inside [ε, 1 − ε], where
    log-probabilities are finite (both gammas underflow only as α, β → 0)."""
    return (xy[..., 0] / xy.sum(-1)).nan_to_num(0.5).clamp(BID_EPS, 1 - BID_EPS)


def sample_bids(alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """A bid from each Beta(α, β), and its mean."""
    return sample_beta(torch.stack([alpha, beta], -1)), alpha / (alpha + beta)


class Society(nn.Module):
    """Stacked Beta bidders and value functions of a society of ``num_primitives`` primitives."""

    def __init__(
        self,
        obs_shape: tuple[int, ...] | list[int],
        num_primitives: int,
        redundancy: int = 2,
        clone: bool = True,
        hidden: tuple[int, ...] | list[int] = (16,),
        network: str = "mlp",
        relu_features: bool = False,
    ) -> None:
        super().__init__()
        self.spec = dict(obs_shape=list(obs_shape), num_primitives=num_primitives, redundancy=redundancy,
                         clone=clone, hidden=list(hidden), network=network)
        if relu_features:  # only then: specs of earlier checkpoints (compared for transfer) stay equal
            self.spec["relu_features"] = True
        self.obs_ndim = len(obs_shape)
        self.num_primitives = num_primitives
        self.num_bidders = num_primitives * redundancy
        self.num_learners = num_primitives if clone else self.num_bidders
        self.samples_per_learner = self.num_bidders // self.num_learners
        self.encoder, features, self.value_net = build(network, tuple(obs_shape), tuple(hidden), relu_features)
        self.head = linear_head(self.encoder, features, 2)  # Beta mean and precision
        self.policy_net = as_one_mlp(self.encoder, self.head)  # where it exists, PPO computes gradients by hand
        self.split = self.encoder.size + self.head.size
        # All parameters of learner k are row k: policy encoder, policy head, then value network.
        self.theta = nn.Parameter(torch.empty(self.num_learners, self.split + self.value_net.size))
        with torch.no_grad():
            self.encoder.init_(self.theta[:, : self.encoder.size])
            self.value_net.init_(self.value_theta)
        self.init_bids(0.5, 2.0)  # the paper's Beta(1, 1)
        self.register_buffer("primitive_of", torch.arange(self.num_bidders) % num_primitives)

    @torch.no_grad()
    def init_bids(self, mean: float, precision: float) -> None:
        """Every bidder starts at Beta(mean · precision, (1 − mean) · precision) in every state: head
        weights 0, μ = sigmoid(b_μ) = mean, ν = softplus(b_ν) = precision (a table: every state's weights are
        its b). A high mean is optimism: an unvisited state is worth much until its bidders learn otherwise."""
        ((w, b),) = self.head.layers(self.theta[:, self.encoder.size : self.split])
        start = torch.tensor([math.log(mean / (1 - mean)), precision + math.log(-math.expm1(-precision))])
        if b is None:
            w.copy_(start.expand_as(w))
        else:
            w.zero_()
            b.copy_(start)

    @property
    def value_theta(self) -> Tensor:
        return self.theta[:, self.split :]

    def distribution(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Beta parameters ``(α, β)``, each ``[K, B]``, of every learner at ``obs``: ``[B, *obs_shape]``
        (the same observations for every learner) or ``[K, B, *obs_shape]``."""
        batch_dims = obs.dim() - self.obs_ndim
        features = self.encoder(self.theta[:, : self.encoder.size], obs, batch_dims)
        return self._alpha_beta(self.head(self.theta[:, self.encoder.size : self.split], features, 2))

    @staticmethod
    def _alpha_beta(out: Tensor) -> tuple[Tensor, Tensor]:
        """α = μν, β = (1 − μ)ν from the head's output: mean μ = sigmoid(out₀), precision ν = softplus(out₁)."""
        precision = nn.functional.softplus(out[..., 1])
        alpha = torch.sigmoid(out[..., 0]) * precision
        return alpha, precision - alpha

    def log_prob_entropy(self, obs: Tensor, bid: Tensor) -> tuple[Tensor, Tensor]:
        """Log-probability of ``bid [K, B]`` at ``obs`` and entropy of every learner's bid distribution."""
        return beta_log_prob_entropy(*self.distribution(obs), bid)

    def head_terms(self, out: Tensor, bid: Tensor, group: Grouped | Ungrouped = UNGROUPED
                   ) -> tuple[Tensor, Tensor, Callable[[Tensor, Tensor], Tensor]]:
        """``log π(bid)``, ``H[π]`` from the head's output ``out [K, M, 2]`` (per state, ``[K, S, 2]``, where the
        samples are ``group``ed), and the map from ``(∂L/∂ log π, ∂L/∂H)`` to ``∂L/∂out``: with ∂μ/∂out₀ = μ(1 − μ)
        and ∂ν/∂out₁ = sigmoid(out₁), ∂L/∂out₀ = (∂L/∂α − ∂L/∂β) ν μ(1 − μ) and
        ∂L/∂out₁ = (∂L/∂α μ + ∂L/∂β (1 − μ)) sigmoid(out₁)."""
        alpha, beta = self._alpha_beta(out)
        log_prob, entropy, saved = beta_terms(alpha, beta, bid, group)
        mean, precision = torch.sigmoid(out[..., 0]), alpha + beta

        def backward(grad_log_prob: Tensor, grad_entropy: Tensor) -> Tensor:
            d_alpha, d_beta = beta_gradients(saved, grad_log_prob, grad_entropy)
            d_mean = (d_alpha - d_beta) * precision * mean * (1 - mean)
            d_precision = (d_alpha * mean + d_beta * (1 - mean)) * torch.sigmoid(out[..., 1])
            return torch.stack([d_mean, d_precision], -1)

        return log_prob, entropy, backward

    def values(self, obs: Tensor) -> Tensor:
        """``[K, B]`` value of every learner."""
        return self.value_net(self.value_theta, obs, obs.dim() - self.obs_ndim)[..., 0]

    def bidders(self, per_learner: Tensor) -> Tensor:
        """Spread ``[K, B]`` learner quantities to ``[B, N]`` bidders (bidder n uses learner n % K)."""
        b = per_learner.shape[1]
        return per_learner.t().unsqueeze(1).expand(b, self.samples_per_learner, -1).reshape(b, -1)

    @torch.no_grad()
    def bid(self, obs: Tensor) -> Tensor:
        """One independent bid per bidder and observation: ``[B, N]``."""
        return self.bid_and_mean(obs)[0]

    @torch.no_grad()
    def bidder_distributions(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Every bidder's ``(α, β)`` at ``obs [B, *obs_shape]``: ``[B, N]`` each."""
        alpha, beta = self.distribution(obs)
        return self.bidders(alpha), self.bidders(beta)

    @torch.no_grad()
    def bid_and_mean(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """One independent bid per bidder and observation, and the mean of its distribution: ``[B, N]`` each."""
        return sample_bids(*self.bidder_distributions(obs))

    @torch.no_grad()
    def act(self, obs: Tensor, active: Tensor | None = None, greedy: bool = False) -> Tensor:
        """The primitive each auction at ``obs [B, *obs_shape]`` selects: ``[B]``. ``greedy``: every bidder
        bids the mean of its distribution."""
        bids = self.bid_and_mean(obs)[greedy]
        winner = auction(bids, torch.ones_like(bids, dtype=torch.bool) if active is None else active)[0]
        return self.primitive_of[winner]
