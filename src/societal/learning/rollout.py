"""Collecting a society's rollouts from a batch of environments: auction steps (the paper's Algorithm 1,
steps 1–3).

At every step every bidder of every environment bids (one batched sample), the highest active
bid wins, the winner's primitive runs, and the mechanism later turns the log into utilities.
Environments keep running across rollouts: where a rollout cuts an episode, the utilities of its
last step use the bids of one more auction at the next state (the way PPO bootstraps with V),
whereas the last step of an episode, terminated or truncated, gets next bids 0, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from societal.environments.vector import VecEnv
from societal.learning.collecting import Collected, Collecting, counted
from societal.learning.compiling import Background, Specialized
from societal.learning.ppo import Samples
from societal.mechanisms import MECHANISMS, auction, prices, settle, utilities
from societal.primitives import Transition
from societal.society import Society, beta_of, draw_gammas, sample_beta


@dataclass
class Rollout:
    obs: Tensor  # [T, B, *obs_shape], or [T, B, 1] state indices for finite tasks (``Collector.current``)
    bids: Tensor  # [T, B, N]
    active: Tensor  # [T, B, N] bool: the bidder took part (agent dropout)
    winner: Tensor  # [T, B] bidder index
    utility: Tensor  # [T, B, N], 0 for losers
    residual: Tensor  # [T, B] credit created (or destroyed) between step t and t+1
    resale: Tensor  # [T, B] what the winner of auction t gets for s_{t+1} (what a trainable option works towards)
    last: Tensor  # [T, B] bool: step t ended its episode
    episode_returns: Tensor  # undiscounted return of each environment's last complete episode (Collecting)
    env_steps: int
    codes: Tensor | None = None  # [S, D]: what the society sees of each state index (``VecEnv.codes``)

    @torch.no_grad()
    def collected(self, society: Society) -> Collected:
        inside = ~self.last  # the residual after an episode's last step is 0 by definition
        market = {"winner_utility": self.utility.sum(2).mean().item(),
                  "conservation_residual": self.residual[inside].mean().item() if inside.any() else 0.0}
        return Collected(self.samples(society), self.episode_returns, int(self.last.sum()), self.env_steps,
                         self.resale, market)

    @torch.no_grad()
    def samples(self, society: Society) -> Samples:
        """Each learner's auctions, as PPO samples: target U, advantage U − V(s) (memoryless bidders)."""
        k, c = society.num_learners, society.samples_per_learner
        t, b, _ = self.bids.shape
        obs = self.obs.flatten(0, 1)
        states = None if obs.is_floating_point() else once_per_state(society, self.codes, len(obs), obs.device)
        value = society.values(obs) if states is None else society.values(states)[:, obs[:, 0]]

        def per_learner(x: Tensor) -> Tensor:  # [T, B, N] → [K, T·B·c]; sample e was bid at obs[e // c]
            return x.reshape(t * b, c, k).permute(2, 0, 1).reshape(k, t * b * c).contiguous()  # PPO reads rows

        utility = per_learner(self.utility)
        advantage = utility - value.repeat_interleave(c, 1)
        return Samples(obs, per_learner(self.bids), utility, advantage, per_learner(self.active), c)


def once_per_state(society: Society, codes: Tensor | None, uses: int, device: torch.device) -> Tensor | None:
    """What the society sees of each state of a finite task whose ``uses`` auctions (or samples) carry state
    indices, where computing each state once is the way: the states' codes (``VecEnv.codes``: always), or the
    indices of one-hot states where they are fewer than the uses; else None (compute each use)."""
    if codes is not None:
        return codes
    states = society.spec["obs_shape"][0]
    return torch.arange(states, device=device)[:, None] if states <= uses else None


def draw_active(num_envs: int, num_bidders: int, device: torch.device) -> Tensor:
    """Agent dropout: k ~ U{0, …, N-2} random bidders of each environment sit out (≥ 2 stay)."""
    k = torch.randint(0, num_bidders - 1, (num_envs, 1), device=device)
    key = torch.rand(num_envs, num_bidders, device=device)
    return key >= key.sort(1).values.gather(1, k)  # all but the k lowest keys


def draw_exploring(active: Tensor, primitive_of: Tensor, rate: float) -> tuple[Tensor, Tensor]:
    """Exploratory auctions: in a fraction ``rate`` of them only the active bidders of one random primitive
    take part. Returns who takes part ``[B, N]`` and which auctions explore ``[B]``."""
    pick = torch.multinomial(active.float(), 1)  # a random active bidder of each auction
    exploring = torch.rand(len(active), 1, device=active.device) < rate
    return torch.where(exploring, active & (primitive_of[pick] == primitive_of), active), exploring[:, 0]


LOG = ("obs", "bids", "active", "winner", "first", "second", "market_first", "market_second", "reward", "duration",
       "last", "resold")  # a society's rollout: what each auction step adds


class Collector(Collecting):
    """Keeps a batch of environments running and collects ``steps`` auctions per environment."""

    STATE = (*Collecting.STATE, "active", "wins")

    def __init__(self, society: Society, primitives, env: VecEnv, mechanism: str, gamma: float,
                 dropout: bool, reward_scale: float = 1.0, reward_shift: float = 0.0,
                 seed: int | None = None, price: str = "sampled", explore: float = 0.0, bonus: float = 0.0,
                 bootstrap_truncated: bool = False, compile: bool = False, reward_end: float = 0.0) -> None:
        self.society, self.primitives, self.env = society, primitives, env
        self.mechanism, self.gamma, self.dropout = mechanism, gamma, dropout
        self.scale, self.shift, self.end = reward_scale, reward_shift, reward_end
        self.mean_prices, self.explore, self.bonus = price == "mean", explore, bonus
        self.bootstrap_truncated = bootstrap_truncated
        # Literal actions on a table: the society sees state indices, so the collector keeps those in place of
        # observations it would only turn back into indices.
        self.indexed = env.indexed and primitives.literal
        # There, without exploration, bonus or resale, an auction step is arithmetic on the table (``market``),
        # which pays to compile (eager, it is ≈ 5 % slower than ``step``).
        self.plain = compile and self.indexed and not (explore or bonus or bootstrap_truncated)
        # compiling starts at the second rollout: the learner's step, which starts compiling after the first
        # update, gains more and goes first
        self.background = Background(self.market, skip=1, vector=False) if self.plain else None
        self.compiled: Specialized | None = None
        self.market_step, self.example = None, ()  # this rollout's ``market`` (eager or compiled), a call of it
        self.start_episodes(seed)
        if self.indexed:
            self.obs = env.state[:, None]
        shape = (env.num_envs, society.num_bidders)
        self.active = draw_active(*shape, self.device) if dropout else torch.ones(shape, dtype=torch.bool,
                                                                                   device=self.device)
        states = len(env.codes) if env.codes is not None else society.spec["obs_shape"][0]
        self.wins = torch.zeros(states if bonus else 0, society.num_primitives, device=self.device)
        self.table: Tensor | None = None  # [S, N, 2]: every state's (α, β) during a rollout (``collect``)
        self.one_step = torch.ones(env.num_envs, device=self.device)
        self.no_resale = torch.zeros(env.num_envs, device=self.device)
        # the table's bids, on the CPU (``sample_beta``)
        self.stream = np.random.default_rng(int(torch.randint(2**62, ()))) if self.device.type == "cpu" else None

    def state_dict(self) -> dict:
        return {**super().state_dict(), "stream": self.stream.bit_generator.state if self.stream else None}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.indexed:  # (checkpoints of older versions hold observations)
            self.obs = self.env.state[:, None]
        if self.stream is not None and state.get("stream") is not None:
            self.stream.bit_generator.state = state["stream"]

    def auction(self, bids: Tensor, means: Tensor | None, active: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(winner, first, second)``: the highest bid of the ``active`` bidders wins; the prices come from the
        bids or (mean prices) from the means."""
        winner, first, second = auction(bids, active)
        return (winner, *settle(means, winner, active)) if self.mean_prices else (winner, first, second)

    def gather(self, steps: int) -> Collected:
        return self.collect(steps).collected(self.society)

    def resold(self, tr: Transition) -> Tensor:
        """``[B]``: where ``bootstrap_truncated`` and an episode was cut by its time limit, what the state where it
        ended would sell for at an auction there (else 0, as at a real end: the paper's rule for both)."""
        if not self.bootstrap_truncated or not tr.truncated.any():
            return self.no_resale
        cut = tr.truncated & ~tr.terminated
        _, first, second = self.auction(*self.bid_and_mean(self.observed(tr.final_obs)), self.active)
        return MECHANISMS[self.mechanism](first, second)[0] * cut

    def count_bonus(self, state: Tensor, primitive: Tensor) -> Tensor:
        """bonus / √n(s, primitive), n counting this win too (state indices ``[B, 1]``)."""
        index = (state[:, 0], primitive)
        self.wins.index_put_(index, torch.ones_like(primitive, dtype=self.wins.dtype), accumulate=True)
        return self.bonus * self.wins[index].rsqrt()

    def observed(self, obs: Tensor) -> Tensor:
        """What the society sees: one-hot observations as state indices ``[B, 1]``, others as they are."""
        return obs.argmax(1, keepdim=True) if self.env.discrete and obs.is_floating_point() else obs

    def current(self) -> Tensor:
        """``observed`` of the environments' current observations; where a finite task codes its states otherwise
        (``VecEnv.codes``), their state indices."""
        if self.indexed:
            return self.obs
        return self.env.state[:, None] if self.env.codes is not None else self.observed(self.obs)

    def bid_and_mean(self, seen: Tensor) -> tuple[Tensor, Tensor | None]:
        """Bids and their means at ``seen`` (``observed``); state indices read their distributions from ``table``
        (and leave the means out unless prices need them)."""
        if self.table is None or seen.is_floating_point():
            return self.society.bid_and_mean(seen)
        alpha_beta = self.table[seen[:, 0]]
        means = alpha_beta[..., 0] / alpha_beta.sum(-1) if self.mean_prices else None
        return sample_beta(alpha_beta, self.stream), means

    def act(self, primitive: Tensor) -> Transition:
        """The chosen primitives run (``indexed``: with state indices in place of observations)."""
        if not self.indexed:
            return self.primitives.apply(self.env, self.obs, primitive)
        obs, reward, terminated, truncated, final = self.env.step_indices(primitive)
        return Transition(obs, reward, reward, terminated, truncated, self.one_step, final)

    def step(self) -> tuple[Tensor, ...]:
        """An auction in every environment (the paper's Algorithm 1, steps 1–3): its entries of the log (``LOG``)."""
        seen = self.current()
        bids, means = self.bid_and_mean(seen)
        winner, first, second = self.auction(bids, means, self.active)
        taking_part, market = self.active, (first, second)
        if self.explore:
            taking_part, exploring = draw_exploring(self.active, self.society.primitive_of, self.explore)
            own = self.auction(bids, means, taking_part)
            winner, first, second = (torch.where(exploring, x, y) for x, y in zip(own, (winner, first, second)))
        primitive = self.society.primitive_of[winner]
        tr = self.act(primitive)
        # an absorbing shift's future is paid at every end, and at a time-limit cut unless the state is resold
        ended = tr.terminated if self.bootstrap_truncated else tr.terminated | tr.truncated
        reward = self.scale * tr.reward + self.shift + self.end * ended
        if self.bonus:
            reward = reward + self.count_bonus(seen, primitive)
        done = tr.terminated | tr.truncated
        self.count(tr.env_return, done)
        if self.dropout:
            self.active = torch.where(done[:, None], draw_active(*self.active.shape, self.device), self.active)
        self.obs = tr.obs
        return seen, bids, taking_part, winner, first, second, *market, reward, tr.duration, done, self.resold(tr)

    def table_step(self) -> tuple[Tensor, ...]:
        """``step`` where it is ``plain``: the random draws, then ``market`` (compiled, once it is)."""
        env, seen = self.env, self.obs
        alpha_beta = self.table[seen[:, 0]]
        xy, draws = draw_gammas(alpha_beta, self.stream), env.draws()
        new_active = draw_active(*self.active.shape, self.device) if self.dropout else self.active
        args = (xy, alpha_beta, self.active, new_active, env.state, env.t, self.episode_return, self.last_return,
                self.completed, *draws)
        if self.market_step is None:  # once per rollout
            self.market_step = self.compiled if self.compiled is not None and self.compiled.fits(args) else self.market
            self.example = args
        bids, winner, first, second, reward, done, active, *state = self.market_step(*args)
        taking_part, self.active = self.active, active
        env.state, env.t, self.episode_return, self.last_return, self.completed = state
        self.obs = env.state[:, None]
        return seen, bids, taking_part, winner, first, second, first, second, reward, self.one_step, done, \
            self.no_resale

    def market(self, xy: Tensor, alpha_beta: Tensor, active: Tensor, new_active: Tensor, state: Tensor, t: Tensor,
               episode_return: Tensor, last_return: Tensor, completed: Tensor, *draws: Tensor) -> tuple[Tensor, ...]:
        """An auction step of a table task without side effects, given its random draws (gammas ``xy`` of the
        bidders' distributions ``alpha_beta``, the table's ``draws``, and the active bidders of episodes that
        start): the bids, the auction, the primitive's step and the returns' bookkeeping."""
        bids = beta_of(xy)
        means = alpha_beta[..., 0] / alpha_beta.sum(-1) if self.mean_prices else None
        winner, first, second = self.auction(bids, means, active)
        state, t, reward, terminated, truncated, _ = self.env.advance(state, t, self.society.primitive_of[winner],
                                                                     draws)
        done = terminated | truncated
        returns = counted(episode_return, last_return, completed, reward, done)
        return (bids, winner, first, second, self.scale * reward + self.shift + self.end * done, done,
                torch.where(done[:, None], new_active, active), state, t, *returns)

    @torch.no_grad()
    def collect(self, steps: int) -> Rollout:
        # The weights do not change within a rollout: with fewer states than auctions, each state's
        # distributions are computed once instead of at every step (always where states are coded).
        states = None
        if self.env.codes is not None or self.env.discrete:  # the society sees state indices
            states = once_per_state(self.society, self.env.codes, steps * self.env.num_envs, self.device)
        self.table = None if states is None else torch.stack(self.society.bidder_distributions(states), -1)
        self.market_step = None
        log = {k: [] for k in LOG}
        plain = self.plain and self.table is not None
        for _ in range(steps):
            for k, v in zip(LOG, self.table_step() if plain else self.step()):
                log[k].append(v)
        if self.background is not None and self.compiled is None and self.market_step is not None:
            self.compiled = self.background.ready(self.example)
        r = {k: torch.stack(v) for k, v in log.items()}
        _, next_first, next_second = self.auction(*self.bid_and_mean(self.current()), self.active)
        market = (r["market_first"], r["market_second"]) if self.explore else None
        auctions = r["first"], r["second"], r["last"], next_first, next_second, market
        discount = self.gamma ** r["duration"]
        u, residual = utilities(self.mechanism, r["reward"], discount, *auctions)
        u, residual = u + discount * r["resold"], residual + r["resold"]
        utility = torch.zeros_like(r["bids"]).scatter_(2, r["winner"][..., None], u[..., None])
        return Rollout(r["obs"], r["bids"], r["active"], r["winner"], utility, residual,
                       prices(self.mechanism, *auctions)[1] + r["resold"], r["last"], self.recent_returns(),
                       int(r["duration"].sum().item()), self.env.codes)
