"""The auction as a PettingZoo ``ParallelEnv``: other multi-agent learners in the society's market.

The agents are the bidders of a society over a task's actions: ``bidder_n`` acts as primitive ``n % P``
(clone ``n // P``). At every step each present bidder bids in [0, 1] for the right to act on the
state (the observation, one-hot for a discrete task); the highest bid wins and its primitive's action
runs. A bidder's reward is its utility under the mechanism (``societal.mechanisms``), as the native
trainer computes it:

    U_t = r_t + γ^{τ_t} · sold_{t+1} − paid_t    for the winner of auction t, 0 for the others,

where ``sold_{t+1}`` is what the next winner pays for s_{t+1}. It is known only once the next auction
has been held: the winner of step t receives U_t at step t+1, or at step t where the episode ends
(then sold = 0), so at the last step one bidder may receive two utilities. ``infos`` say what a bidder may
know: whether it won this step's auction, the price it paid, the duration τ of its transformation (1
for a literal action), and ``utilities``, the utilities its reward sums (oldest first). With agent
dropout a random subset of the bidders (≥ 2 stay) sits each episode out, as in the native trainer.
"""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
import torch
from pettingzoo import ParallelEnv

from societal.environments.vector import make, obs_shape
from societal.mechanisms import MECHANISMS, auction, utilities


class AuctionEnv(ParallelEnv):
    """The auction over ``env_id``'s actions, ``redundancy`` bidders per action, priced by ``mechanism``."""

    metadata = {"name": "societal_auction_v0", "render_modes": []}  # noqa: RUF012  (PettingZoo convention)

    def __init__(self, env_id: str = "societal/Chain-v0", mechanism: str = "ccv", redundancy: int = 2,
                 gamma: float = 0.99, dropout: bool = False, reward_scale: float = 1.0, reward_shift: float = 0.0,
                 **env_kwargs: object) -> None:
        if mechanism not in MECHANISMS:
            raise ValueError(f"unknown mechanism {mechanism!r}; allowed: {', '.join(MECHANISMS)}")
        self.env = make(env_id, **env_kwargs)
        self.num_primitives = int(self.env.action_space.n)
        self.mechanism, self.gamma, self.dropout = mechanism, gamma, dropout
        self.scale, self.shift = reward_scale, reward_shift
        self.possible_agents = [f"bidder_{n}" for n in range(self.num_primitives * redundancy)]
        self.index = {a: n for n, a in enumerate(self.possible_agents)}
        space = self.env.observation_space
        self.one_hot = isinstance(space, gym.spaces.Discrete)
        self._observation_space = (gym.spaces.Box(0.0, 1.0, obs_shape(space), np.float32) if self.one_hot
                                   else space)
        self.rng = np.random.default_rng()
        self.agents: list[str] = []

    @functools.cache  # noqa: B019  (PettingZoo returns the same space object for an agent)
    def observation_space(self, agent: str) -> gym.Space:
        return self._observation_space

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> gym.Space:
        return gym.spaces.Box(0.0, 1.0, (1,), np.float32)

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        obs, _ = self.env.reset(seed=seed)
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        n = len(self.possible_agents)
        out = self.rng.choice(n, self.rng.integers(0, n - 1), replace=False) if self.dropout else []
        self.agents = [a for i, a in enumerate(self.possible_agents) if i not in set(out)]
        self.obs, self.pending = self._observe(obs), None
        return {a: self.obs for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        missing = [a for a in self.agents if a not in actions or not np.isfinite(actions[a]).all()]
        if missing:
            raise ValueError(f"every present agent bids a finite number in [0, 1]; none from {', '.join(missing)}")
        present = [self.index[a] for a in self.agents]
        bids = torch.zeros(1, len(self.possible_agents))
        bids[0, present] = torch.tensor([float(np.clip(actions[a], 0, 1)[0]) for a in self.agents])
        active = torch.zeros_like(bids, dtype=torch.bool)
        active[0, present] = True
        winner, first, second = auction(bids, active)
        settled: dict[str, list[float]] = {a: [] for a in self.agents}
        if self.pending is not None:  # the previous winner sells s_t at this auction's price
            self._settle(settled, *self.pending, first, second, last=False)
        n = int(winner)
        obs, reward, terminated, truncated, _ = self.env.step(n % self.num_primitives)
        paid = MECHANISMS[self.mechanism](first, second)[1]
        self.pending = (n, torch.tensor([[self.scale * reward + self.shift]]), first, second)
        done = terminated or truncated
        if done:  # the episode ends: nothing to sell
            self._settle(settled, *self.pending, torch.zeros(1), torch.zeros(1), last=True)
        won = self.possible_agents[n]
        rewards = {a: sum(u) for a, u in settled.items()}
        infos = {a: {"won": a == won, "paid": float(paid) if a == won else 0.0, "duration": 1, "utilities": settled[a]}
                 for a in self.agents}
        self.obs = self._observe(obs)
        observations = {a: self.obs for a in self.agents}
        terminations, truncations = dict.fromkeys(self.agents, terminated), dict.fromkeys(self.agents, truncated)
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def _settle(self, settled: dict, n: int, reward: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
                next_first: torch.Tensor, next_second: torch.Tensor, last: bool) -> None:
        u, _ = utilities(self.mechanism, reward, torch.tensor([[self.gamma]]), first[None], second[None],
                         torch.tensor([[last]]), next_first, next_second)
        settled[self.possible_agents[n]].append(float(u))

    def _observe(self, obs: object) -> np.ndarray:
        if self.one_hot:
            return np.eye(self._observation_space.shape[0], dtype=np.float32)[int(obs)]
        return np.asarray(obs, dtype=np.float32)
