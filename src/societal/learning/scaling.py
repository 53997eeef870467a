"""The scale of a task's discounted returns, estimated before training where the task has no table.

Bids lie in [0, 1] and, at equilibrium, a primitive bids Q*(s, a): returns outside [0, 1] cannot be bid.
Finite tasks check Q* exactly (``environments.mdp.bid_range_warnings``); on any other task a probe runs
random actions in ``PROBE_ENVS`` copies for ``PROBE_STEPS`` steps and bounds the returns the market will
be paid by the larger of the highest discounted return it saw and the mean |reward| of the steps that do
not end an episode, paid until the time limit (or forever): the value of a policy that lasts, which random
actions underestimate on tasks such as CartPole (random episodes ≈ 22 steps, the best 500). A reward paid
only as an episode ends (a goal) is no such rate, and counts only in the returns seen. Where that bound exceeds 1,
``auto_scale`` divides ``reward_scale`` and ``reward_shift`` by it (rounded down to two significant
digits; the run's ``config.json`` records the result), else a one-line ``SocietalWarning`` names the
setting to use. Negative returns cannot be bid either; they are only reported, since a shift changes
what is best on an episodic task.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from societal.config import PAPER_TASKS, Config
from societal.environments.tabular import finite_mdp
from societal.environments.vector import make, make_vec
from societal.errors import SocietalWarning

PROBE_ENVS, PROBE_STEPS = 64, 256


@dataclass(frozen=True)
class ReturnScale:
    """Discounted returns of random actions, of the rewards the market is paid (``reward_scale·r + shift``)."""

    highest: float
    lowest: float
    lasting: float  # mean |reward| per step, discounted until the time limit (or forever)

    @property
    def bound(self) -> float:
        return max(self.highest, self.lasting)


def probe(config: Config, seed: int = 0) -> ReturnScale:
    """Random actions in copies of ``config.env``: the scale of its discounted returns (``ReturnScale``)."""
    env = make(config.env, **config.env_kwargs)
    vec = make_vec(config.env, config.env_kwargs, PROBE_ENVS, torch.device("cpu"))
    vec.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, env.action_space.n, (PROBE_STEPS, PROBE_ENVS))
    rewards, done = np.zeros((PROBE_STEPS, PROBE_ENVS)), np.zeros((PROBE_STEPS, PROBE_ENVS), bool)
    for t in range(PROBE_STEPS):
        _, reward, terminated, truncated, _ = vec.step(torch.as_tensor(actions[t]))
        rewards[t] = config.reward_scale * reward.double().numpy() + config.reward_shift
        done[t] = (terminated | truncated).numpy()
    returns, g = np.zeros_like(rewards), np.zeros(PROBE_ENVS)
    for t in reversed(range(PROBE_STEPS)):  # returns to go; an episode the probe cuts counts what it saw
        g = rewards[t] + config.gamma * g * ~done[t]
        returns[t] = g
    limit = env.spec.max_episode_steps if env.spec is not None else None
    horizon = (1 - config.gamma ** limit if limit else 1.0) / (1 - config.gamma) if config.gamma < 1 else (
        limit or math.inf)
    steady = np.abs(rewards[~done])
    return ReturnScale(float(returns.max()), float(returns.min()), float(steady.mean() if steady.size else 0.0)
                       * horizon)


def fit_return_scale(config: Config) -> Config:
    """``config`` with rewards scaled so that discounted returns fit the bids (``auto_scale``), or as it is with
    a warning where they do not; unchanged for the paper's tasks (their rewards fit), finite tasks (checked
    exactly), monolithic agents and options."""
    if (config.agent != "society" or config.options or config.env in PAPER_TASKS
            or finite_mdp(make(config.env, **config.env_kwargs)) is not None):
        return config
    try:
        scale = probe(config, config.seed)
    except Exception:  # the estimate is advice: training meets the failure again and reports it in context
        return config
    if scale.bound > 1 and math.isfinite(scale.bound):
        fitting = floor_2(config.reward_scale / scale.bound)
        if config.auto_scale:
            factor = fitting / config.reward_scale
            config = dataclasses.replace(config, reward_scale=fitting, reward_shift=config.reward_shift * factor)
            scale = dataclasses.replace(scale, lowest=scale.lowest * factor)
        else:
            warnings.warn(f"discounted returns of {config.env} reach ≈ {scale.bound:.3g}, but bids lie in [0, 1]: "
                          f"use --reward-scale {fitting:g} or --set auto_scale=True", SocietalWarning, stacklevel=3)
    if scale.lowest < 0:
        warnings.warn(f"discounted returns of {config.env} go down to {scale.lowest:.3g} (random actions), but bids "
                      "lie in [0, 1]: shift the rewards up with --reward-shift (on an episodic task a shift also pays "
                      "for lasting longer)", SocietalWarning, stacklevel=3)
    return config


def floor_2(x: float) -> float:
    """``x > 0`` rounded down to two significant digits: a scale that still fits, readable in ``config.json``."""
    digits = 1 - math.floor(math.log10(x))
    return round(math.floor(x * 10**digits + 1e-9) / 10**digits, digits)
