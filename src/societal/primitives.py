"""Primitives: what the winner of an auction (or the choice of a monolithic policy) does to the state.

A primitive kind turns the chosen primitive of each environment of a batch into one transition of
the (semi-)MDP above it. The rollout only cares about the duration τ it gets back: γ^τ discounts
the next bid, or the next value. Environments outside ``active`` are left as they are (τ = 0).
MentalRotation's functions are its environment's actions, so they are ``LiteralActions``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from societal.config import Config
from societal.environments.vector import VecEnv
from societal.errors import SocietalError
from societal.monolithic import Monolithic
from societal.storage import checkpoint_file, load_weights, read_checkpoint, read_config


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

    literal = True

    def __init__(self, num_actions: int) -> None:
        self.num_primitives = num_actions

    def apply(self, env: VecEnv, obs: Tensor, chosen: Tensor, active: Tensor | None = None) -> Transition:
        obs, reward, terminated, truncated, final_obs = env.step(chosen, active)
        return Transition(obs, reward, reward, terminated, truncated, torch.ones_like(reward), final_obs)


class Options:
    """Primitive i is option i: ``policy(obs, i)`` acts until it emits ``done_action`` (that step is
    taken) or the episode ends; the environment's own time limit is the episode's step budget.

    The options of a batch run side by side and end at different times; environments whose option
    has ended wait (they are not stepped) until every option of the batch has ended.

    Options made ``from_runs`` are frozen unless ``trainable``: then every inner step is kept in ``steps``
    (``learning.rollout.option_samples`` turns them into PPO samples for the stacked option policies ``net``).
    """

    literal = False

    def __init__(self, policy: Callable[[Tensor, Tensor], Tensor], num_options: int, gamma: float,
                 done_action: int, net: Monolithic | None = None, trainable: bool = False,
                 config: Config | None = None) -> None:
        self.policy, self.num_primitives, self.gamma, self.done_action = policy, num_options, gamma, done_action
        self.net, self.trainable = net, trainable
        self.config = config  # the pre-training run's: its PPO settings fine-tune the options
        self.steps: list[tuple[Tensor, ...]] = []
        self.calls = 0  # apply() calls recorded since the last samples(): the rollout's time index

    @classmethod
    def from_runs(cls, paths: list[str | Path], gamma: float, done_action: int,
                  device: torch.device | str = "cpu", trainable: bool = False) -> Options:
        """Options from the best checkpoints of monolithic runs (one run per option)."""
        configs = [read_config(Path(p)) for p in paths]
        checkpoints = [read_checkpoint(Path(p), "best", c) for p, c in zip(paths, configs)]
        specs = [c["agent_spec"] for c in checkpoints]
        if any(c.agent != "monolithic" for c in configs) or any(s != specs[0] for s in specs):
            raise SocietalError(f"options must be monolithic runs with one architecture: {', '.join(map(str, paths))}")
        try:
            one = Monolithic(**specs[0])
        except (TypeError, ValueError) as e:
            raise SocietalError(f"cannot rebuild the option of {paths[0]}: {str(e).splitlines()[0]}") from None
        for path, checkpoint in zip(paths, checkpoints):
            load_weights(one, checkpoint["agent"], checkpoint_file(Path(path), "best"), "the option of its agent_spec")
        if not 0 <= done_action < one.num_primitives:
            raise SocietalError(f"option_done_action {done_action} is not an action of the options (they have "
                                f"{one.num_primitives}: 0 … {one.num_primitives - 1})")
        net = Monolithic(**{**specs[0], "num_learners": len(paths)}).to(device)
        with torch.no_grad():
            net.theta.copy_(torch.cat([c["agent"]["theta"] for c in checkpoints]))
        net.requires_grad_(trainable)

        def policy(obs: Tensor, option: Tensor) -> Tensor:  # all options in one pass, then each env's own
            logits = net.logits(obs)[option, torch.arange(len(obs), device=obs.device)]
            return torch.distributions.Categorical(logits=logits).sample()

        return cls(policy, len(paths), gamma, done_action, net, trainable, configs[0])

    def frozen(self) -> Options:
        """The same options, sharing their weights, that do not record their steps (for evaluation)."""
        return Options(self.policy, self.num_primitives, self.gamma, self.done_action, self.net, False, self.config)

    @torch.no_grad()
    def apply(self, env: VecEnv, obs: Tensor, chosen: Tensor, active: Tensor | None = None) -> Transition:
        b, device = len(chosen), obs.device
        running = torch.ones(b, dtype=torch.bool, device=device) if active is None else active.clone()
        reward, env_return, duration = (torch.zeros(b, device=device) for _ in range(3))
        terminated, truncated = (torch.zeros(b, dtype=torch.bool, device=device) for _ in range(2))
        final_obs = obs.clone()
        action = torch.zeros(b, dtype=torch.long, device=device)
        while running.any():
            idx = running.nonzero().squeeze(1)  # only the options still acting: most end long before the last
            action[idx] = self.policy(obs[idx], chosen[idx])
            before = obs
            obs, r, term, trunc, final = env.step(action, running)
            reward += self.gamma**duration * r
            env_return += r
            duration += running.float()
            terminated |= term
            truncated |= trunc
            final_obs = torch.where(running.view(-1, *[1] * (obs.dim() - 1)), final, final_obs)
            ended = term | trunc | (action == self.done_action)
            if self.trainable:
                self.steps.append((idx, before[idx], action[idx], r[idx], term[idx], ended[idx], final[idx],
                                   chosen[idx], torch.full_like(idx, self.calls)))
            running &= ~ended
        if self.trainable:
            self.calls += 1
        return Transition(obs, reward, env_return, terminated, truncated, duration, final_obs)


def make_primitives(config: Config, num_actions: int, device: torch.device,
                    trainable: bool = False) -> LiteralActions | Options:
    """The environment's actions, or the options of ``config.options`` as their runs trained them.

    ``trainable`` options record their inner steps for PPO: only the trainer's collection asks for that.
    """
    if not config.options:
        return LiteralActions(num_actions)
    missing = [p for p in config.options if not (Path(p) / "config.json").is_file()]
    if missing:
        raise SocietalError(f"options must be run folders of monolithic runs; not a run folder: {', '.join(missing)}")
    return Options.from_runs(list(config.options), config.gamma, config.option_done_action, device, trainable)
