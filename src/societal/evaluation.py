"""Evaluation episodes: how a trained agent acts on its task, with its own random stream."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from societal.config import Config
from societal.environments.vector import VecEnv, make_vec
from societal.monolithic import Monolithic
from societal.primitives import LiteralActions, Options, make_primitives
from societal.society import Society


@dataclass
class Evaluation:
    """What evaluation episodes gave: each episode's undiscounted return, whether it ended in a terminal state,
    and how many auctions each primitive won where."""

    returns: Tensor
    """``[episodes]``: undiscounted returns."""
    terminated: Tensor
    """``[episodes]`` bool: reached a terminal state (TwoRooms: succeeded), not cut by a time limit."""
    wins: Tensor
    """``[S, P]``: auctions won per primitive in each one-hot state (S = 1 for other observations)."""

    def __repr__(self) -> str:
        return (f"Evaluation(episodes={len(self.returns)}, mean={self.mean:.4g}, std={self.std:.4g}, "
                f"terminated={self.terminated.float().mean().item():.3f})")

    @property
    def mean(self) -> float:
        return self.returns.mean().item()

    @property
    def std(self) -> float:
        return self.returns.std(unbiased=False).item()


def make_eval_env(config: Config, episodes: int, device: torch.device) -> VecEnv:
    return make_vec(config.env, {**config.env_kwargs, **config.eval_env_kwargs}, episodes, device)


@torch.no_grad()
def evaluate(agent: Society | Monolithic, config: Config, episodes: int, seed: int,
             primitives: LiteralActions | Options | None = None, env: VecEnv | None = None) -> Evaluation:
    """One episode in each of ``episodes`` environments; every bidder takes part, bids are sampled (each
    bidder bids its mean where ``config.eval_greedy``).

    An episode still running after ``config.eval_max_auctions`` auctions counts with its return so far.
    ``env`` (``episodes`` copies of the evaluation task) may be reused: it is reset with ``seed``.
    Training's random streams are left as they were.
    """
    device = next(agent.parameters()).device
    env = env or make_eval_env(config, episodes, device)
    primitives = primitives or make_primitives(config, agent.num_primitives, device)  # options: read once
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        obs = env.reset(seed=seed)
        total = torch.zeros(episodes, device=device)
        returns = torch.full((episodes,), math.nan, device=device)
        running = torch.ones(episodes, dtype=torch.bool, device=device)
        terminated = torch.zeros(episodes, dtype=torch.bool, device=device)
        wins = torch.zeros(obs.shape[1] if env.discrete else 1, agent.num_primitives, device=device)
        for _ in range(config.eval_max_auctions):
            chosen = agent.act(obs, greedy=config.eval_greedy)
            state = obs if env.discrete else torch.ones(episodes, 1, device=device)
            wins += (state * running[:, None]).t() @ torch.nn.functional.one_hot(chosen, agent.num_primitives).float()
            tr = primitives.apply(env, obs, chosen, running)  # finished episodes wait
            total += tr.env_return * running
            done = (tr.terminated | tr.truncated) & running
            returns = torch.where(done, total, returns)
            terminated |= done & tr.terminated
            running &= ~done
            if not running.any():
                break
            obs = tr.obs
    return Evaluation(torch.where(running, total, returns).cpu(), terminated.cpu(), wins.cpu())


class UniformChoices(torch.nn.Module):
    """Chooses every primitive with equal probability: the level a trained agent must beat."""

    def __init__(self, num_primitives: int, device: torch.device) -> None:
        super().__init__()
        self.num_primitives = num_primitives
        self.anchor = torch.nn.Parameter(torch.zeros(0, device=device))  # where ``evaluate`` finds the device

    def act(self, obs: Tensor, greedy: bool = False) -> Tensor:
        return torch.randint(self.num_primitives, (len(obs),), device=obs.device)


def no_better_than_random(agent: Society | Monolithic, config: Config, eval_returns: list[float], seed: int,
                          primitives: LiteralActions | Options | None = None, env: VecEnv | None = None) -> str | None:
    """A line saying so where most evaluations (``eval_returns``, in order), the last among them, were no better
    than uniformly random choices on the same evaluation episodes (their mean plus two standard errors)."""
    if len(eval_returns) < 4:
        return None
    device = next(agent.parameters()).device
    random = evaluate(UniformChoices(agent.num_primitives, device), config, config.eval_episodes, seed, primitives,
                      env)
    level = random.mean + 2 * random.std / math.sqrt(config.eval_episodes)
    flat = [r <= level for r in eval_returns]
    if not flat[-1] or sum(flat) < 0.75 * len(flat):
        return None
    return (f"{sum(flat)} of {len(flat)} evaluations, the last among them, were no better than random choices "
            f"({random.mean:.4g}): the {config.agent} did not learn {config.env}")

