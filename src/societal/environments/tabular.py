"""The paper's tabular tasks (PAPER.md §2.1–2.3) as deterministic finite MDPs.

Each task is a table: ``next_state[s, a]``, ``reward[s, a]``, ``terminal[s, a]`` (the step ends
the episode), a start state and a horizon (a truncation). ``TabularEnv`` serves the table as a
Gymnasium environment; ``TabularVecEnv`` steps many copies at once in torch.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from societal.environments.mdp import FiniteMDP


class TabularEnv(gym.Env):
    """A deterministic finite MDP with one-hot-able states (``Discrete`` observations)."""

    metadata = {"render_modes": ["ansi"]}  # noqa: RUF012  (Gymnasium convention)

    def __init__(self, next_state, reward, terminal, start: int, horizon: int, render_mode=None) -> None:
        self.next_state = np.asarray(next_state, dtype=np.int64)
        self.reward = np.asarray(reward, dtype=np.float64)
        self.terminal = np.asarray(terminal, dtype=bool)
        self.start, self.horizon, self.render_mode = start, horizon, render_mode
        num_states, num_actions = self.next_state.shape
        self.observation_space = gym.spaces.Discrete(num_states)
        self.action_space = gym.spaces.Discrete(num_actions)
        self.state, self.t = start, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state, self.t = self.start, 0
        return self.state, {}

    def step(self, action):
        s, a = self.state, int(action)
        self.state, self.t = int(self.next_state[s, a]), self.t + 1
        terminated = bool(self.terminal[s, a])
        return self.state, float(self.reward[s, a]), terminated, not terminated and self.t >= self.horizon, {}

    def render(self):
        return f"t={self.t} state={self.state}"

    def mdp(self) -> FiniteMDP:
        n = self.observation_space.n
        onward = np.eye(n)[self.next_state] * ~self.terminal[..., None]
        return FiniteMDP(transition=onward, reward=self.reward)


class Bandit(TabularEnv):
    """One state, ``arms`` arms; arm k pays (k+1)/(arms+1) and ends the episode."""

    def __init__(self, arms: int = 4, render_mode=None) -> None:
        rewards = (np.arange(arms) + 1) / (arms + 1)
        super().__init__(np.zeros((1, arms)), rewards[None], np.ones((1, arms)), 0, 1, render_mode)


class Chain(TabularEnv):
    """States 0..length-1 in a row from 0; Left/Right; ``goal_reward`` for entering the last state.

    The horizon is 4·(length-1) steps, as in the original.
    """

    def __init__(self, length: int = 6, goal_reward: float = 0.8, render_mode=None) -> None:
        if length < 2:
            raise ValueError(f"length must be at least 2, got {length}")
        s = np.arange(length)
        nxt = np.stack([np.maximum(s - 1, 0), np.minimum(s + 1, length - 1)], axis=1)
        into_goal = (nxt == length - 1) & (s[:, None] != length - 1)
        super().__init__(nxt, goal_reward * into_goal, into_goal, 0, 4 * (length - 1), render_mode)


class Duality(TabularEnv):
    """Two states and an absorbing trap (PAPER.md §2.3); the optimum alternates s0 → s1 → s0 ….

    (s0, a0) → trap, 0; (s0, a1) → s1, ``big``; (s1, a0) → s0, ``big``; (s1, a1) → s1, ``small``;
    the trap pays ``trap`` per step forever. Never terminates; truncated after ``horizon`` steps.
    """

    def __init__(
        self, big: float = 0.5, small: float = 0.3, trap: float = -1.0, horizon: int = 10, render_mode=None
    ) -> None:
        nxt = [[2, 1], [0, 1], [2, 2]]
        rew = [[0.0, big], [big, small], [trap, trap]]
        super().__init__(nxt, rew, np.zeros((3, 2)), 0, horizon, render_mode)


class TabularVecEnv:
    """``num_envs`` copies of a ``TabularEnv`` stepped together in torch, reset in the same step."""

    discrete = True

    def __init__(self, env: TabularEnv, num_envs: int, device: torch.device) -> None:
        self.num_envs, self.device = num_envs, device
        self.num_states = env.observation_space.n
        self.num_actions = env.action_space.n  # tables flattened to [S·A]: one 1-D take per lookup
        self.next_state = torch.as_tensor(env.next_state, device=device).flatten()
        self.reward = torch.as_tensor(env.reward, dtype=torch.float32, device=device).flatten()
        self.terminal = torch.as_tensor(env.terminal, device=device).flatten()
        self.start, self.horizon = env.start, env.horizon
        self.eye = torch.eye(self.num_states, device=device)
        self.state = torch.full((num_envs,), self.start, device=device)
        self.t = torch.zeros(num_envs, dtype=torch.long, device=device)

    def reset(self, seed: int | None = None) -> Tensor:  # deterministic tasks: nothing to seed
        self.state.fill_(self.start)
        self.t.zero_()
        return self.eye[self.state]

    def step(self, action: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        sa = self.state * self.num_actions + action
        reward, terminated, final = self.reward.take(sa), self.terminal.take(sa), self.next_state.take(sa)
        if mask is not None:  # copies left out stay where they are
            reward, terminated, final = reward * mask, terminated & mask, torch.where(mask, final, self.state)
        self.t += 1 if mask is None else mask.long()
        truncated = ~terminated & (self.t >= self.horizon)
        done = terminated | truncated
        self.state = torch.where(done, self.start, final)
        self.t.masked_fill_(done, 0)
        return self.eye[self.state], reward, terminated, truncated, self.eye[final]
