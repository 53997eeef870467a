"""Finite MDPs and their optimal Q-function, the bids a society should converge to (PAPER.md §1.5)."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np


@dataclass
class FiniteMDP:
    """``transition[s, a, s']``: probability of going on to s' (mass that ends the episode is left out);
    ``reward[s, a]``: expected reward."""

    transition: np.ndarray
    reward: np.ndarray


def value_iteration(mdp: FiniteMDP, gamma: float, tol: float = 1e-10, max_iter: int = 1_000_000) -> np.ndarray:
    """Q*[s, a] = r(s, a) + γ Σ_s' p(s' | s, a) max_a' Q*[s', a'] (ignoring time limits)."""
    q = np.zeros_like(mdp.reward, dtype=np.float64)
    for _ in range(max_iter):
        new = mdp.reward + gamma * mdp.transition @ q.max(axis=1)
        if np.abs(new - q).max() < tol:
            return new
        q = new
    return q


def finite_mdp(env: gym.Env) -> FiniteMDP | None:
    """The table of a societal tabular task or of a Gymnasium toy-text task (``env.P``), else None."""
    env = env.unwrapped
    if hasattr(env, "mdp"):
        return env.mdp()
    table = getattr(env, "P", None)
    if not isinstance(table, dict) or not isinstance(env.observation_space, gym.spaces.Discrete):
        return None
    n, m = env.observation_space.n, env.action_space.n
    transition, reward = np.zeros((n, m, n)), np.zeros((n, m))
    for s, actions in table.items():
        for a, outcomes in actions.items():
            for p, s_next, r, done in outcomes:
                reward[s, a] += p * r
                if not done:
                    transition[s, a, s_next] += p
    return FiniteMDP(transition, reward)
