"""The range of a task's discounted returns: exact on a finite task, estimated before training on any other.

Bids lie in [0, 1] and, at equilibrium, a primitive bids Q*(s, a): returns outside [0, 1] cannot be bid.
Finite tasks have Q* exactly (within the time limit where it is part of the task); on any other task a probe runs
random actions in ``PROBE_ENVS`` copies for ``PROBE_STEPS`` steps and bounds the returns the market will
be paid from above by the larger of the highest discounted return it saw and the mean reward of the steps
that do not end an episode, paid until the time limit (or forever): the value of a policy that lasts, which
random actions underestimate on tasks such as CartPole (random episodes ≈ 22 steps, the best 500); from below
likewise by the lowest return seen and a negative mean reward paid until the limit. A reward paid only as an
episode ends (a goal) is no such rate, and counts only in the returns seen.

``auto_scale`` maps that range into [0, 1]: ``reward_scale`` divided by its width (rounded down to two
significant digits) and, where it reaches below 0 and ``absorbing_shift`` is on, a ``reward_shift`` that
lifts every value by the same amount (so what is best does not change); the run's ``config.json`` records the
result. Otherwise a one-line ``SocietalWarning`` names the setting to use.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from societal.config import PAPER_TASKS, Config
from societal.environments.mdp import FiniteMDP, task_q
from societal.environments.tabular import finite_mdp
from societal.environments.vector import make, make_vec
from societal.errors import SocietalWarning
from societal.exact import market_task, policy_values, reachable

PROBE_ENVS, PROBE_STEPS = 64, 256


@dataclass(frozen=True)
class ReturnScale:
    """Discounted returns of random actions, of the rewards the market is paid (``Config.reward_end`` included)."""

    highest: float
    lowest: float
    rate: float  # mean reward of a step that does not end an episode, discounted until the time limit (or forever)

    @property
    def bound(self) -> float:
        return max(self.highest, self.rate)

    @property
    def floor(self) -> float:
        return min(self.lowest, self.rate)


def probe(config: Config, seed: int = 0) -> ReturnScale:
    """Random actions in copies of ``config.env``: the range of its discounted returns (``ReturnScale``)."""
    env = make(config.env, **config.env_kwargs)
    vec = make_vec(config.env, config.env_kwargs, PROBE_ENVS, torch.device("cpu"))
    vec.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, env.action_space.n, (PROBE_STEPS, PROBE_ENVS))
    rewards, done = np.zeros((PROBE_STEPS, PROBE_ENVS)), np.zeros((PROBE_STEPS, PROBE_ENVS), bool)
    for t in range(PROBE_STEPS):
        _, reward, terminated, truncated, _ = vec.step(torch.as_tensor(actions[t]))
        ended = terminated if config.bootstrap_truncated else terminated | truncated
        paid = config.reward_scale * reward.double().numpy() + config.reward_shift
        rewards[t] = paid + config.reward_end() * ended.numpy()
        done[t] = (terminated | truncated).numpy()
    returns, g = np.zeros_like(rewards), np.zeros(PROBE_ENVS)
    for t in reversed(range(PROBE_STEPS)):  # returns to go
        g = rewards[t] + config.gamma * g * ~done[t]
        returns[t] = g
    returns = returns[np.flip(np.logical_or.accumulate(np.flip(done, 0), 0), 0)]  # of episodes that ended
    limit = env.spec.max_episode_steps if env.spec is not None else None
    horizon = (1 - config.gamma ** limit if limit else 1.0) / (1 - config.gamma) if config.gamma < 1 else (
        limit or math.inf)
    steady = rewards[~done]
    highest, lowest = (float(returns.max()), float(returns.min())) if returns.size else (0.0, 0.0)
    return ReturnScale(highest, lowest, float(steady.mean() if steady.size else 0.0) * horizon)


def table_scale(config: Config, mdp: FiniteMDP) -> ReturnScale:
    """The exact range of the values a market passes through on a finite task, on its reachable states and of the
    rewards it is paid: from the highest Q* down to the lower of the lowest max_a Q* (what a state sells for at
    the end) and the lowest value of uniformly random play (where it starts: prices that must fall below 0 to
    follow it stop at 0 and lose the actions' order, as on Taxi, where every bid sinks to ≈ 0)."""
    paid, live = market_task(mdp, config), reachable(mdp)
    q = task_q(paid, config.gamma)[0][live]
    random = policy_values(paid, np.full(paid.reward.shape, 1 / paid.reward.shape[1]), config.gamma)[live]
    return ReturnScale(float(q.max()), float(min(q.max(1).min(), random.min())), 0.0)


def fit_return_scale(config: Config) -> Config:
    """``config`` with rewards mapped so that discounted returns fit the bids (``auto_scale``), or as it is with
    a warning where they do not; unchanged for the paper's tasks (their rewards fit), monolithic agents and options.
    A finite task's range is exact (its warnings come with its Q*, ``environments.mdp.bid_range_warnings``)."""
    if config.agent != "society" or config.options or config.env in PAPER_TASKS:
        return config
    mdp = finite_mdp(make(config.env, **config.env_kwargs))
    if mdp is not None:
        return _mapped(config, table_scale(config, mdp)) if config.auto_scale else config
    try:
        scale = probe(config, config.seed)
    except Exception:  # the estimate is advice: training meets the failure again and reports it in context
        return config
    if not (math.isfinite(scale.bound) and math.isfinite(scale.floor)):
        return config
    if config.auto_scale:
        return _mapped(config, scale)
    width = max(scale.bound, 0.0) - min(scale.floor, 0.0)
    if width > 1:
        warnings.warn(f"discounted returns of {config.env} span ≈ {width:.3g}, but bids lie in [0, 1]: "
                      f"use --reward-scale {floor_2(1 / width) * config.reward_scale:g} or --set auto_scale=True",
                      SocietalWarning, stacklevel=3)
    if scale.floor < 0:
        warnings.warn(f"discounted returns of {config.env} go down to {scale.floor:.3g} (random actions), but bids "
                      "lie in [0, 1]: --set absorbing_shift=True --set auto_scale=True lifts them without changing "
                      "what is best (a --reward-shift alone also pays for lasting longer)", SocietalWarning,
                      stacklevel=3)
    return config


def _mapped(config: Config, scale: ReturnScale) -> Config:
    """``auto_scale``: rewards divided by the width of the range where it exceeds 1, and with an absorbing shift
    the lowest value lifted to 0 (every value moves by shift/(1 − γ)); else a warning where it stays below 0."""
    width = max(scale.bound, 0.0) - min(scale.floor, 0.0)
    k = floor_2(1 / width) if width > 1 else 1.0
    lift = config.absorbing_shift and scale.floor < 0
    while True:  # the shift is rounded up, so the scale may have to give a little for the highest to fit
        lifted = ceil_2(-k * scale.floor * (1 - config.gamma)) if lift else 0.0
        if not lift or k * max(scale.bound, 0.0) + lifted / (1 - config.gamma) <= 1 + 1e-9:
            break
        k = floor_2(0.99 * k)
    if scale.floor < 0 and not lift:
        warnings.warn(f"discounted returns of {config.env} go down to {k * scale.floor:.3g}, but bids lie in [0, 1]: "
                      "--set absorbing_shift=True lifts them without changing what is best (a --reward-shift alone "
                      "also pays for lasting longer)", SocietalWarning, stacklevel=4)
    return dataclasses.replace(config, reward_scale=k * config.reward_scale,
                               reward_shift=k * config.reward_shift + lifted)


def floor_2(x: float) -> float:
    """``x > 0`` rounded down to two significant digits: a scale that still fits, readable in ``config.json``."""
    digits = 1 - math.floor(math.log10(x))
    return round(math.floor(x * 10**digits + 1e-9) / 10**digits, digits)


def ceil_2(x: float) -> float:
    """``x`` rounded up to two significant digits (0 stays 0)."""
    if x <= 0:
        return -floor_2(-x) if x < 0 else 0.0
    digits = 1 - math.floor(math.log10(x))
    return round(math.ceil(x * 10**digits - 1e-9) / 10**digits, digits)

