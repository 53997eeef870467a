"""Primitives: what the winner of an auction (or the choice of a monolithic policy) does to the state.

A primitive kind turns the chosen primitive of each environment of a batch into one transition of
the (semi-)MDP above it. The rollout only cares about the duration τ it gets back: γ^τ discounts
the next bid, or the next value. Functions (computation graphs) are added by their own issue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from societal.environments.vector import VecEnv


@dataclass
class Transition:
    obs: Tensor  # [B, *obs_shape], already reset where the episode ended
    reward: Tensor  # [B] Σ_k γ^k r_k inside the transformation (the reward of a semi-MDP step)
    env_return: Tensor  # [B] Σ_k r_k, undiscounted, for logging episode returns
    terminated: Tensor  # [B] bool
    truncated: Tensor  # [B] bool
    duration: Tensor  # [B] env steps taken (τ)
    final_obs: Tensor  # [B, *obs_shape] where each episode ended (= obs where it goes on)


class LiteralActions:
    """Primitive i is action i of a Discrete action space: one environment step (τ = 1)."""

    def __init__(self, num_actions: int) -> None:
        self.num_primitives = num_actions

    def apply(self, env: VecEnv, obs: Tensor, chosen: Tensor) -> Transition:
        obs, reward, terminated, truncated, final_obs = env.step(chosen)
        return Transition(obs, reward, reward, terminated, truncated, torch.ones_like(reward), final_obs)


class Options:
    """Primitive i is option i: ``policy(obs, i)`` acts until it emits ``done_action`` (that step is
    taken) or the episode ends; the environment's own time limit is the episode's step budget.

    The options of a batch run side by side and end at different times; environments whose option
    has ended wait (they are not stepped) until every option of the batch has ended.
    """

    def __init__(self, policy: Callable[[Tensor, Tensor], Tensor], num_options: int, gamma: float,
                 done_action: int) -> None:
        self.policy, self.num_primitives, self.gamma, self.done_action = policy, num_options, gamma, done_action

    @classmethod
    def from_runs(cls, paths: list[str | Path], gamma: float, done_action: int,
                  device: torch.device | str = "cpu") -> Options:
        """Frozen options from the best checkpoints of monolithic runs (one run per option)."""
        from societal.errors import SocietalError
        from societal.monolithic import Monolithic
        from societal.run import load

        agents = [load(p).agent for p in paths]
        if any(not isinstance(a, Monolithic) or a.spec != agents[0].spec for a in agents):
            raise SocietalError(f"options must be monolithic runs with one architecture: {', '.join(map(str, paths))}")
        stacked = Monolithic(**{**agents[0].spec, "num_learners": len(agents)}).to(device)
        with torch.no_grad():
            stacked.theta.copy_(torch.cat([a.theta for a in agents]))
        stacked.requires_grad_(False)

        def policy(obs: Tensor, option: Tensor) -> Tensor:  # all options in one pass, then each env's own
            logits = stacked.logits(obs)[option, torch.arange(len(obs), device=obs.device)]
            return torch.distributions.Categorical(logits=logits).sample()

        return cls(policy, len(agents), gamma, done_action)

    @torch.no_grad()
    def apply(self, env: VecEnv, obs: Tensor, chosen: Tensor) -> Transition:
        b, device = len(chosen), obs.device
        running = torch.ones(b, dtype=torch.bool, device=device)
        reward, env_return, duration = (torch.zeros(b, device=device) for _ in range(3))
        terminated, truncated = (torch.zeros(b, dtype=torch.bool, device=device) for _ in range(2))
        final_obs = obs.clone()
        action = torch.zeros(b, dtype=torch.long, device=device)
        while running.any():
            idx = running.nonzero().squeeze(1)  # only the options still acting: most end long before the last
            action[idx] = self.policy(obs[idx], chosen[idx])
            obs, r, term, trunc, final = env.step(action, running)
            reward += self.gamma**duration * r
            env_return += r
            duration += running.float()
            terminated |= term
            truncated |= trunc
            final_obs = torch.where(running.view(-1, *[1] * (obs.dim() - 1)), final, final_obs)
            running &= ~(term | trunc | (action == self.done_action))
        return Transition(obs, reward, env_return, terminated, truncated, duration, final_obs)
