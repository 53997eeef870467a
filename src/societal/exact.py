"""Exact evaluation of an agent on a finite task: its policy, that policy's return, and its bids against Q*.

A society's policy at state s is the probability that each primitive wins the auction there. Bidder n
bids from Beta(α_n, β_n) with density f_n and distribution function F_n, independently of the others,
so with every bidder taking part

    P(bidder n wins at s) = ∫₀¹ f_n(x) · Π_{m ≠ n} F_m(x) dx,

computed on a grid of 2¹⁶ points (in logit space); a primitive wins with the summed probability of its bidders. The
greedy policy lets every bidder bid the mean α/(α+β) of its distribution (the highest mean wins). A
policy's return is its expected discounted return from the start distribution within the time limit H,

    V_0 = tail,   V_{h+1}(s) = Σ_a π(a|s) (r(s, a) + γ Σ_s' p(s'|s, a) V_h(s')),   return = Σ_s start(s) V_H(s)

(a linear solve where there is no time limit; ``tail`` is 0 unless an absorbing shift pays a cut episode's
future); the optimum replaces Σ_a π(a|s) by max_a.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import Tensor

from societal.config import Config
from societal.environments.mdp import FiniteMDP, q_by_steps_left, task_q, value_iteration
from societal.monolithic import Monolithic
from societal.society import BID_EPS, Society

GRID = 2**16
OPTIMAL_TOL = 1e-6  # actions within this of max_a Q*(s, a) are optimal
CLOSE = 0.05  # a winning bid this close to Q* counts as priced right


def win_probabilities(alpha: Tensor, beta: Tensor, grid: int = GRID) -> Tensor:
    """``[S, N]``: the probability that each of N independent Beta(α, β) bidders bids highest, per state.

    Bids are kept in [ε, 1 − ε]. Inside, the integral runs over u = logit(x) on an even grid, where the
    density of u, x^α (1 − x)^β / B(α, β), stays bounded even when α or β < 1. A bid beyond 1 − ε (mass
    ≈ ε^β / (β B(α, β))) becomes 1 − ε, where the first such bidder wins the tie (as ``argmax`` does).
    """
    if len(alpha) > 4:  # a few states at a time: the grid is large
        return torch.cat([win_probabilities(a, b, grid) for a, b in zip(alpha.split(4), beta.split(4))])
    edge = math.log((1 - BID_EPS) / BID_EPS)
    step = 2 * edge / grid
    x = torch.sigmoid((torch.arange(grid, dtype=torch.float64) + 0.5) * step - edge)
    a, b = alpha.double()[..., None], beta.double()[..., None]
    log_norm = torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)
    inside = (a * x.log() + b * (-x).log1p() - log_norm).exp() * step  # probability of each cell
    low, high = ((c * math.log(BID_EPS) - c.log() - log_norm).exp() for c in (a, b))  # the two tails
    mass = torch.cat([low, inside], -1)
    total = mass.sum(-1, keepdim=True) + high
    mass, high = mass / total, high[..., 0] / total[..., 0]  # normalised (the tail formulas are first-order)
    cdf = mass.cumsum(-1) - mass / 2  # at the middle of each cell
    # Π_{m≠n} F_m(x) as the product of the bidders before n and after n (no division by a zero F_n)
    ones = torch.ones_like(cdf[:, :1])
    before = torch.cat([ones, cdf[:, :-1]], 1).cumprod(1)
    after = torch.cat([cdf[:, 1:], ones], 1).flip(1).cumprod(1).flip(1)
    first_at_top = torch.cat([torch.ones_like(high[:, :1]), (1 - high[:, :-1]).cumprod(1)], 1)
    win = (mass * before * after).sum(-1) + high * first_at_top
    return win / win.sum(1, keepdim=True)


@torch.no_grad()
def policy(agent: Society | Monolithic, num_states: int, greedy: bool = False) -> np.ndarray:
    """``[S, P]``: the probability that the agent picks each primitive in each one-hot state."""
    device = next(agent.parameters()).device
    states = torch.eye(num_states, device=device)
    if isinstance(agent, Monolithic):
        logits = agent.logits(states)[0].double().cpu()
        chosen = torch.nn.functional.one_hot(logits.argmax(1), agent.num_primitives).double()
        return (chosen if greedy else logits.softmax(1)).numpy()
    alpha, beta = (agent.bidders(x).cpu() for x in agent.distribution(states))  # [S, N]
    per_bidder = (torch.nn.functional.one_hot((alpha / (alpha + beta)).argmax(1), agent.num_bidders).double()
                  if greedy else win_probabilities(alpha, beta))
    per_primitive = torch.zeros(num_states, agent.num_primitives, dtype=torch.float64)
    return per_primitive.index_add_(1, agent.primitive_of.cpu(), per_bidder).numpy()


@torch.no_grad()
def mean_bids(society: Society, num_states: int) -> np.ndarray:
    """``[S, N]``: every bidder's mean bid in every one-hot state."""
    alpha, beta = society.distribution(torch.eye(num_states, device=society.theta.device))
    return society.bidders(alpha / (alpha + beta)).double().cpu().numpy()


def _backup(mdp: FiniteMDP, gamma: float, value: np.ndarray) -> np.ndarray:
    return mdp.reward + gamma * mdp.transition @ value  # [S, A]


def policy_values(mdp: FiniteMDP, pi: np.ndarray, gamma: float) -> np.ndarray:
    """``[S]``: the expected discounted return of the stationary policy ``pi [S, A]`` from each state, with the
    whole time limit left."""
    if mdp.horizon is None:
        p = np.einsum("sa,sat->st", pi, mdp.transition)
        return np.linalg.solve(np.eye(len(pi)) - gamma * p, (pi * mdp.reward).sum(1))
    value = np.full(len(pi), mdp.tail)
    for _ in range(mdp.horizon):
        value = (pi * _backup(mdp, gamma, value)).sum(1)
    return value


def policy_return(mdp: FiniteMDP, pi: np.ndarray, gamma: float) -> float:
    """Expected discounted return of the stationary policy ``pi [S, A]`` from the start, within the time limit."""
    return float(mdp.start @ policy_values(mdp, pi, gamma))


def optimal_return(mdp: FiniteMDP, gamma: float) -> float:
    """The best expected discounted return from the start within the time limit (a policy may use the time left)."""
    q = value_iteration(mdp, gamma) if mdp.horizon is None else q_by_steps_left(mdp, gamma)[-1]
    return float(mdp.start @ q.max(1))


def reachable(mdp: FiniteMDP) -> np.ndarray:
    """``[S]`` bool: the states some policy can reach from the start."""
    seen = mdp.start > 0
    edges = mdp.transition.sum(1) > 0
    while True:
        grown = seen | (seen @ edges > 0)
        if (grown == seen).all():
            return seen
        seen = grown


@dataclass
class Assessment:
    """How good an agent's policy is on a finite task, computed exactly from its table (no sampling).

    Returns are expected discounted returns from the start, within the task's time limit. The **score** of a
    policy is (return − random) / (optimum − random): 1 for an optimal policy, 0 for the uniformly random
    one, below 0 for worse; unlike return / optimum it means the same whatever the sign of the rewards
    (1 where the random policy is already optimal). ``sampled``: the agent acting as in training (bids
    sampled); ``greedy``: every bidder bidding its mean (a monolithic policy: its most probable choice).
    """

    optimal_return: float
    random_return: float
    """The uniformly random policy's return."""
    return_sampled: float
    return_greedy: float
    score_sampled: float
    score_greedy: float
    fraction_sampled: float
    """return_sampled / optimal_return (meaningful only where returns are positive)."""
    fraction_greedy: float
    optimal_choice: float
    """Of the reachable states with a better and a worse action: where the top mean bid (or logit) is optimal."""
    optimal_sampled: float
    """On the optimal policy's states: the mean probability of an optimal choice, sampled."""
    bid_error: float
    """On the states the optimal policy visits: mean |top mean bid − max_a Q*(s, a)| (societies)."""
    bids_close: float
    """… the fraction of those states where it is within ``CLOSE``."""
    worst_bid_error: float
    """… the largest."""
    path_states: int
    """How many states the optimal policy visits (to pool ``bids_close`` over tasks)."""

    def to_dict(self) -> dict:
        return asdict(self)

    def __repr__(self) -> str:
        return "Assessment(" + ", ".join(f"{k}={v:.4g}" for k, v in self.to_dict().items()) + ")"


def run_task(mdp: FiniteMDP, config: Config) -> FiniteMDP:
    """The task a run learns: its time limit is part of it unless the run resells time-limit cuts
    (``bootstrap_truncated``: the limit is a training convenience, so the task has none; with γ = 1 the limit
    stays, as returns need one)."""
    return replace(mdp, horizon=None) if config.bootstrap_truncated and config.gamma < 1 else mdp


def market_task(mdp: FiniteMDP, config: Config) -> FiniteMDP:
    """``run_task`` as the run's market is paid for it: its rewards mapped by the run's settings."""
    return run_task(mdp, config).scaled(config.reward_scale, config.reward_shift, config.reward_end(),
                                        config.absorbed())


def score(value: float, random: float, best: float) -> float:
    """(value − random) / (best − random); 1 where the random policy is already optimal."""
    return 1.0 if best - random <= 1e-12 * max(1.0, abs(best)) else (value - random) / (best - random)


def assess(agent: Society | Monolithic, mdp: FiniteMDP, gamma: float, paid: FiniteMDP | None = None) -> Assessment:
    """How good an agent's policy is on a finite task ``mdp``, exactly, and how close its bids are to the Q* of the
    rewards its market is ``paid`` (the task's own where None)."""
    n = len(mdp.reward)
    q, on_path = task_q(mdp, gamma)
    paid_q = q if paid is None else task_q(paid, gamma)[0]
    best = optimal_return(mdp, gamma)
    sampled, greedy = policy(agent, n), policy(agent, n, greedy=True)
    random = policy_return(mdp, np.full(q.shape, 1 / q.shape[1]), gamma)
    value_sampled, value_greedy = policy_return(mdp, sampled, gamma), policy_return(mdp, greedy, gamma)
    optimal = q >= q.max(1, keepdims=True) - OPTIMAL_TOL
    decisions = reachable(mdp) & ~optimal.all(1)
    choice = optimal[np.arange(n), greedy.argmax(1)]
    nan = float("nan")
    errors = np.array([nan])
    if isinstance(agent, Society):
        errors = np.abs(mean_bids(agent, n).max(1) - paid_q.max(1))[on_path]
    return Assessment(
        optimal_return=best,
        random_return=random,
        return_sampled=value_sampled,
        return_greedy=value_greedy,
        score_sampled=score(value_sampled, random, best),
        score_greedy=score(value_greedy, random, best),
        fraction_sampled=value_sampled / best,
        fraction_greedy=value_greedy / best,
        optimal_choice=float(choice[decisions].mean()) if decisions.any() else 1.0,
        optimal_sampled=float((sampled * optimal).sum(1)[on_path].mean()),
        bid_error=float(errors.mean()),
        bids_close=float((errors <= CLOSE).mean()) if isinstance(agent, Society) else nan,
        worst_bid_error=float(errors.max()),
        path_states=int(on_path.sum()),
    )
