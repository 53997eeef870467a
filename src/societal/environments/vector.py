"""Batches of environments as tensors: our tabular tasks natively, any other Gymnasium env through
a ``SyncVectorEnv`` (each copy seeded once with its own stream, reset in the same step)."""

from __future__ import annotations

from typing import Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from societal.environments.tabular import TabularEnv, TabularVecEnv
from societal.errors import SocietalError


class VecEnv(Protocol):
    num_envs: int
    discrete: bool  # observations are one-hot states

    def reset(self, seed: int | None = None) -> Tensor: ...

    def step(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``(next obs, reward, terminated, truncated, final obs)``: a finished copy is already reset, and
        ``final obs`` is where it ended (``next obs`` elsewhere), for bootstrapping a truncation."""
        ...


def make(env_id: str, **kwargs) -> gym.Env:
    """``gymnasium.make`` with the user's mistakes turned into one clear ``SocietalError``."""
    import societal.environments  # noqa: F401  (registers the societal/ ids)

    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        ours = sorted(i for i in gym.registry if i.startswith("societal/"))
        raise SocietalError(
            f"unknown environment {env_id!r} ({e}); use one of {', '.join(ours)} "
            "or any registered Gymnasium id with a Discrete action space"
        ) from None
    except TypeError as e:
        raise SocietalError(f"bad keyword argument for {env_id}: {str(e).split(' was raised')[0]}") from None
    except ValueError as e:
        raise SocietalError(f"bad value for {env_id}: {e}") from None
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise SocietalError(
            f"{env_id} has action space {env.action_space}; a society of literal actions needs a Discrete one"
        )
    obs_shape(env.observation_space, env_id)
    return env


def obs_shape(space: gym.Space, env_id: str = "the environment") -> tuple[int, ...]:
    """The shape of the tensor a society sees: one-hot for Discrete, the array itself for Box."""
    if isinstance(space, gym.spaces.Discrete):
        return (int(space.n),)
    if isinstance(space, gym.spaces.Box):
        return tuple(space.shape)
    raise SocietalError(f"{env_id} has observation space {space}; supported: Discrete (one-hot) or Box")


class GymVecEnv:
    def __init__(self, env_id: str, kwargs: dict, num_envs: int, device: torch.device) -> None:
        self.num_envs, self.device = num_envs, device
        self.envs = gym.vector.SyncVectorEnv(
            [lambda: gym.make(env_id, **kwargs)] * num_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
        )
        space = self.envs.single_observation_space
        self.discrete = isinstance(space, gym.spaces.Discrete)
        self.one_hot = torch.eye(space.n, device=device) if self.discrete else None

    def _obs(self, obs: np.ndarray) -> Tensor:
        if self.one_hot is not None:
            return self.one_hot[torch.as_tensor(obs, device=self.device)]
        return torch.as_tensor(obs, dtype=torch.float32, device=self.device)

    def reset(self, seed: int | None = None) -> Tensor:
        return self._obs(self.envs.reset(seed=seed)[0])

    def step(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        obs, reward, terminated, truncated, info = self.envs.step(action.cpu().numpy())
        final = obs.copy()
        for i in np.flatnonzero(terminated | truncated):
            final[i] = info["final_obs"][i]
        t = lambda x, dtype: torch.as_tensor(x, dtype=dtype, device=self.device)  # noqa: E731
        return (self._obs(obs), t(reward, torch.float32), t(terminated, torch.bool), t(truncated, torch.bool),
                self._obs(final))


def make_vec(env_id: str, kwargs: dict, num_envs: int, device: torch.device) -> VecEnv:
    env = make(env_id, **kwargs)
    if isinstance(env.unwrapped, TabularEnv):
        return TabularVecEnv(env.unwrapped, num_envs, device)
    return GymVecEnv(env_id, kwargs, num_envs, device)
