"""What every collector shares: what a rollout gives the trainer (``Collected``), and the environments,
episode returns and compile of a collector between rollouts (``Collecting``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from societal.environments.vector import VecEnv
from societal.learning.compiling import Background
from societal.learning.ppo import Samples


@dataclass
class Collected:
    """What a rollout gives the trainer, from a society or from a monolithic agent alike."""

    samples: Samples
    returns: Tensor  # the return of each environment's last complete episode (Collecting.recent_returns)
    episodes: int  # episodes that ended in the rollout
    env_steps: int
    continuation: Tensor  # [T, B] what the chooser of step t gets where that step ended (trainable options)
    market: dict[str, float]  # a society's: winner_utility, conservation_residual


class Collecting:
    """What every collector keeps between rollouts (``STATE``, with its environments), saved for a resume,
    and the returns of the episodes it completes."""

    STATE: tuple[str, ...] = ("obs", "episode_return", "last_return", "completed")
    env: VecEnv
    obs: Tensor
    device: torch.device
    background: Background | None = None  # compiling the collector's step

    def start_episodes(self, seed: int | None) -> None:
        self.obs = self.env.reset(seed=seed)
        self.device = self.obs.device
        self.episode_return = torch.zeros(self.env.num_envs, device=self.device)
        self.last_return = torch.zeros_like(self.episode_return)
        self.completed = torch.zeros(self.env.num_envs, dtype=torch.bool, device=self.device)

    def count(self, env_return: Tensor, done: Tensor) -> None:
        """Add a step's return to the episodes in progress; ``done`` ones are complete."""
        self.episode_return, self.last_return, self.completed = counted(
            self.episode_return, self.last_return, self.completed, env_return, done)

    def finish_compiling(self) -> None:
        """Wait for a compile in progress (seconds): a process that exits while the compiler works can abort."""
        if self.background is not None:
            self.background.wait()

    def recent_returns(self) -> Tensor:
        """The return of each environment's most recent complete episode, once every environment has completed
        one (else none). Returns of the episodes that end within a rollout would favour short episodes early
        in training (on Chain only the fast ones end in the first rollout)."""
        return self.last_return.clone() if self.completed.all() else self.last_return[:0]

    def state_dict(self) -> dict:
        return {**{k: getattr(self, k).clone() for k in self.STATE}, "env": self.env.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``; environments that cannot be restored (Gymnasium envs) start new episodes
        from seeded resets instead."""
        if self.env.resumable:
            self.env.load_state_dict(state["env"])
            for k in self.STATE:
                setattr(self, k, state[k].to(self.device))
        else:
            self.obs = self.env.reset(seed=int(torch.randint(2**31, ())))
            self.episode_return.zero_()


def counted(episode_return: Tensor, last_return: Tensor, completed: Tensor, env_return: Tensor, done: Tensor
            ) -> tuple[Tensor, Tensor, Tensor]:
    """``Collecting.count`` without side effects: the returns of the episodes in progress, the last complete
    ones, and which environments have completed one."""
    episode_return = episode_return + env_return
    return episode_return.masked_fill(done, 0.0), torch.where(done, episode_return, last_return), completed | done
