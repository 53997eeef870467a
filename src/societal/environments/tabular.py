"""Finite MDPs as tables: the paper's tabular tasks (its §7.1), any Gymnasium env with a
transition table ``P`` (FrozenLake, Taxi, CliffWalking), and the generated tasks of ``generated.py``.

A table lists the outcomes of every (state, action): outcome k happens with probability
``prob[s, a, k]``, leads to ``next_state[s, a, k]``, pays ``reward[s, a, k]`` and ends the episode
if ``terminal[s, a, k]``. Episodes start in a state drawn from ``start`` and are truncated after
``horizon`` steps (``None``: never). The agent sees a state one-hot, or as its row of ``features`` where a task
encodes its states otherwise (the follow-up's two-hot (state, key) codes). ``TabularEnv`` serves a table as a
Gymnasium environment;
``TabularVecEnv`` steps many copies at once in torch.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from societal.environments.mdp import FiniteMDP
from societal.environments.state import SavedState


class TabularEnv(gym.Env):
    """A finite MDP as a Gymnasium env. Tables are ``[S, A, K]`` (K outcomes) or ``[S, A]`` (deterministic);
    ``start`` is a state or a distribution over states; ``features [S, D]``: what the agent sees of each state
    (a ``Box``; ``None``: the state itself, ``Discrete``)."""

    metadata = {"render_modes": ["ansi"]}  # noqa: RUF012  (Gymnasium convention)
    action_names: tuple[str, ...] = ()
    """Names of the actions, for plots (``action k`` where empty)."""

    def __init__(self, next_state, reward, terminal, start: int | np.ndarray, horizon: int | None,
                 prob=None, render_mode=None, features: np.ndarray | None = None) -> None:
        def outcomes(x, dtype) -> np.ndarray:
            x = np.asarray(x, dtype=dtype)
            return x[..., None] if x.ndim == 2 else x

        self.next_state = outcomes(next_state, np.int64)
        self.reward = outcomes(reward, np.float64)
        self.terminal = outcomes(terminal, bool)
        self.prob = np.ones(self.next_state.shape) if prob is None else outcomes(prob, np.float64)
        num_states, num_actions, _ = self.next_state.shape
        self.start = np.eye(num_states)[start] if np.ndim(start) == 0 else np.asarray(start, dtype=np.float64)
        self.horizon, self.render_mode = horizon, render_mode
        self.features = None if features is None else np.asarray(features, dtype=np.float32)
        self.observation_space = (gym.spaces.Discrete(num_states) if features is None
                                  else gym.spaces.Box(0.0, 1.0, self.features.shape[1:], np.float32))
        self.action_space = gym.spaces.Discrete(num_actions)
        self.state, self.t = int(self.start.argmax()), 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state, self.t = int(self.np_random.choice(len(self.start), p=self.start)), 0
        return self.observe(self.state), {}

    def observe(self, state: int) -> int | np.ndarray:
        return state if self.features is None else self.features[state].copy()

    def step(self, action):
        s, a = self.state, int(action)
        k = int(self.np_random.choice(self.prob.shape[2], p=self.prob[s, a])) if self.prob.shape[2] > 1 else 0
        self.state, self.t = int(self.next_state[s, a, k]), self.t + 1
        terminated = bool(self.terminal[s, a, k])
        truncated = not terminated and self.horizon is not None and self.t >= self.horizon
        return self.observe(self.state), float(self.reward[s, a, k]), terminated, truncated, {}

    def render(self):
        return f"t={self.t} state={self.state}"

    def mdp(self) -> FiniteMDP:
        n = len(self.next_state)
        onward = self.prob * ~self.terminal  # [S, A, K]: probability mass that goes on
        transition = np.zeros((n, self.action_space.n, n))
        s, a, _ = np.indices(self.next_state.shape)
        np.add.at(transition, (s, a, self.next_state), onward)
        paid = self.reward[self.prob > 0]
        return FiniteMDP(transition, (self.prob * self.reward).sum(2), self.start, self.horizon,
                         (float(paid.min()), float(paid.max())))


TOY_TEXT_ACTIONS = {
    "FrozenLakeEnv": ("Left", "Down", "Right", "Up"),
    "CliffWalkingEnv": ("Up", "Right", "Down", "Left"),
    "TaxiEnv": ("South", "North", "East", "West", "Pickup", "Dropoff"),
}


def action_names(env: gym.Env) -> tuple[str, ...]:
    """The names of a task's actions where it has them (``()`` elsewhere)."""
    inner = env.unwrapped
    return tuple(getattr(inner, "action_names", ())) or TOY_TEXT_ACTIONS.get(type(inner).__name__, ())


def finite_mdp(env: gym.Env) -> FiniteMDP | None:
    """The table of a tabular task or of a Gymnasium env with a transition table ``P``, else None."""
    table = env.unwrapped if isinstance(env.unwrapped, TabularEnv) else from_transition_table(env)
    return None if table is None else table.mdp()


def from_transition_table(env: gym.Env) -> TabularEnv | None:
    """The table of a Gymnasium env with a transition table ``P`` (toy-text tasks), with its time limit;
    None for other envs, and for Taxi's ``fickle_passenger``, whose steps leave the table."""
    inner = env.unwrapped
    table = getattr(inner, "P", None)
    if (not isinstance(table, dict) or not isinstance(inner.observation_space, gym.spaces.Discrete)
            or getattr(inner, "fickle_passenger", False)):
        return None
    n, m = inner.observation_space.n, inner.action_space.n
    k = max(len(outcomes) for actions in table.values() for outcomes in actions.values())
    prob, reward = np.zeros((n, m, k)), np.zeros((n, m, k))
    next_state, terminal = np.tile(np.arange(n)[:, None, None], (1, m, k)), np.zeros((n, m, k), bool)
    for s, actions in table.items():
        for a, outcomes in actions.items():
            for i, (p, s_next, r, done) in enumerate(outcomes):
                prob[s, a, i], next_state[s, a, i], reward[s, a, i], terminal[s, a, i] = p, s_next, r, done
    start = getattr(inner, "initial_state_distrib", None)
    if start is None:
        return None
    horizon = env.spec.max_episode_steps if env.spec is not None else None
    tabular = TabularEnv(next_state, reward, terminal, np.asarray(start, np.float64), horizon, prob)
    tabular.action_names = action_names(env)
    return tabular


def integers(**values: object) -> None:
    """Constructor arguments that must be whole numbers (``length=2.5`` is refused, not rounded)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name} must be an integer, got {value!r}")


class Bandit(TabularEnv):
    """One state, ``arms`` arms; arm k pays ``values[k]`` (default (k+1)/(arms+1)) and ends the episode."""

    def __init__(self, arms: int = 4, values: list[float] | None = None, render_mode=None) -> None:
        integers(arms=arms)
        if arms < 1:
            raise ValueError(f"arms must be at least 1, got {arms}")
        if values is not None and len(values) != arms:
            raise ValueError(f"values must have one entry per arm ({arms}), got {len(values)}")
        rewards = (np.arange(arms) + 1) / (arms + 1) if values is None else np.asarray(values, dtype=np.float64)
        super().__init__(np.zeros((1, arms)), rewards[None], np.ones((1, arms)), 0, 1, render_mode=render_mode)
        self.action_names = tuple(f"arm {k}" for k in range(arms))


class Chain(TabularEnv):
    """States 0..length-1 in a row from 0; Left/Right; ``goal_reward`` for entering the last state.

    The horizon is 4·(length-1) steps, as in the original.
    """

    action_names = ("Left", "Right")

    def __init__(self, length: int = 6, goal_reward: float = 0.8, render_mode=None) -> None:
        integers(length=length)
        if length < 2:
            raise ValueError(f"length must be at least 2, got {length}")
        s = np.arange(length)
        nxt = np.stack([np.maximum(s - 1, 0), np.minimum(s + 1, length - 1)], axis=1)
        into_goal = (nxt == length - 1) & (s[:, None] != length - 1)
        super().__init__(nxt, goal_reward * into_goal, into_goal, 0, 4 * (length - 1), render_mode=render_mode)


class Duality(TabularEnv):
    """Two states and an absorbing trap (the paper's §7.1); the optimum alternates s0 → s1 → s0 ….

    (s0, a0) → trap, 0; (s0, a1) → s1, ``big``; (s1, a0) → s0, ``big``; (s1, a1) → s1, ``small``;
    the trap pays ``trap`` per step forever. Never terminates; truncated after ``horizon`` steps.
    """

    def __init__(
        self, big: float = 0.5, small: float = 0.3, trap: float = -1.0, horizon: int = 10, render_mode=None
    ) -> None:
        integers(horizon=horizon)
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {horizon}")
        nxt = [[2, 1], [0, 1], [2, 2]]
        rew = [[0.0, big], [big, small], [trap, trap]]
        super().__init__(nxt, rew, np.zeros((3, 2)), 0, horizon, render_mode=render_mode)


class TabularVecEnv(SavedState):
    """``num_envs`` copies of a ``TabularEnv`` stepped together in torch, reset in the same step.

    Outcomes and start states are drawn from the copies' own random stream (``reset(seed)`` seeds it).
    """

    STATE = ("state", "t")
    indexed = True

    def __init__(self, env: TabularEnv, num_envs: int, device: torch.device) -> None:
        self.num_envs, self.device = num_envs, device
        self.num_states, self.num_actions, self.outcomes = env.next_state.shape
        # tables flattened to [S·A·K]: one 1-D take per lookup
        flat = lambda x, dtype=None: torch.as_tensor(x, dtype=dtype, device=device).flatten()  # noqa: E731
        self.next_state, self.terminal = flat(env.next_state), flat(env.terminal)
        self.reward = flat(env.reward, torch.float32)
        self.cumulative = flat(env.prob.cumsum(2), torch.float32).view(-1, self.outcomes)
        self.start = torch.as_tensor(env.start, dtype=torch.float32, device=device)
        self.fixed_start = int(env.start.argmax()) if env.start.max() == 1 else None
        self.horizon = env.horizon
        self.generator = torch.Generator(device)
        self.discrete = env.features is None  # observations are one-hot states
        self.codes = None if self.discrete else torch.as_tensor(env.features, device=device)
        self.seen = torch.eye(self.num_states, device=device) if self.discrete else self.codes  # row s: state s
        self.state = torch.zeros(num_envs, dtype=torch.long, device=device)
        self.t = torch.zeros(num_envs, dtype=torch.long, device=device)

    def _starts(self) -> Tensor | int:
        if self.fixed_start is not None:
            return self.fixed_start
        return torch.multinomial(self.start, self.num_envs, replacement=True, generator=self.generator)

    def reset(self, seed: int | None = None) -> Tensor:
        if seed is not None:
            self.generator.manual_seed(seed)
        self.state = torch.zeros_like(self.state) + self._starts()
        self.t.zero_()
        return self.seen[self.state]

    def step(self, action: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        state, reward, terminated, truncated, final = self.step_indices(action, mask)
        return self.seen[state[:, 0]], reward, terminated, truncated, self.seen[final[:, 0]]

    def step_indices(self, action: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``step``, with state indices ``[B, 1]`` in place of the observations."""
        self.state, self.t, reward, terminated, truncated, final = self.advance(self.state, self.t, action,
                                                                               self.draws(), mask)
        return self.state[:, None], reward, terminated, truncated, final[:, None]

    def draws(self) -> tuple[Tensor, ...]:
        """A step's random numbers, as ``advance`` reads them: a uniform number per copy where actions have several
        outcomes, then a start state per copy where episodes start at random."""
        u = () if self.outcomes == 1 else (torch.rand(self.num_envs, 1, generator=self.generator, device=self.device),)
        return (*u, *(() if self.fixed_start is not None else (self._starts(),)))

    def advance(self, state: Tensor, t: Tensor, action: Tensor, draws: tuple[Tensor, ...], mask: Tensor | None = None
                ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``(state, t, reward, terminated, truncated, final)`` after copies in ``state`` at time ``t`` take ``action``
        (``mask``: only some of them), given the step's ``draws``; a copy whose episode ends starts a new one.
        Without side effects, so that a compiled auction step can contain it."""
        sa = state * self.num_actions + action
        if self.outcomes == 1:
            index = sa
        else:  # the outcome whose cumulative probability first exceeds a uniform draw
            k = (self.cumulative[sa] <= draws[0]).sum(1).clamp(max=self.outcomes - 1)
            index = sa * self.outcomes + k
        reward, terminated, final = (x.take(index) for x in (self.reward, self.terminal, self.next_state))
        if mask is not None:  # copies left out stay where they are
            reward, terminated, final = reward * mask, terminated & mask, torch.where(mask, final, state)
        t = t + (1 if mask is None else mask.long())
        truncated = ~terminated & (t >= self.horizon) if self.horizon is not None else torch.zeros_like(terminated)
        done = terminated | truncated
        starts = self.fixed_start if self.fixed_start is not None else draws[-1]
        return torch.where(done, starts, final), t.masked_fill(done, 0), reward, terminated, truncated, final
