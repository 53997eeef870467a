"""Batches of environments as tensors: our tasks and any env with a transition table natively in torch,
any other Gymnasium env as a list of copies (each seeded once with its own stream, reset in the same step)."""

from __future__ import annotations

import importlib
from typing import Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from societal.environments.tabular import TabularVecEnv, from_transition_table
from societal.errors import SocietalError


class VecEnv(Protocol):
    num_envs: int
    discrete: bool  # observations are one-hot states
    codes: Tensor | None  # [S, D]: a finite task's observation of each state, where they are not one-hot
    resumable: bool  # state_dict() holds its whole state (episodes in progress go on after a resume)
    indexed: bool  # a finite task stepped as a table: step_indices gives state indices in place of observations

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...

    def reset(self, seed: int | None = None) -> Tensor: ...

    def step(self, action: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``(next obs, reward, terminated, truncated, final obs)``: a finished copy is already reset, and
        ``final obs`` is where it ended (``next obs`` elsewhere), for bootstrapping a truncation. Copies
        outside ``mask`` do not step (reward 0, not done)."""
        ...


def make(env_id: str, **kwargs) -> gym.Env:
    """``gymnasium.make`` with the user's mistakes turned into one clear ``SocietalError``."""
    import societal.environments  # noqa: F401  (registers the societal/ ids)

    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        ours = sorted(i for i in gym.registry if i.startswith("societal/"))
        raise SocietalError(
            f"unknown environment {env_id!r} ({e}); use one of {', '.join(ours)}, any registered Gymnasium id with "
            "a Discrete action space, or your own: name the module that registers it (--import MODULE, imports=…) "
            "or use the id MODULE:ID"
        ) from None
    except TypeError as e:
        raise SocietalError(f"bad keyword argument for {env_id}: {str(e).split(' was raised')[0]}") from None
    except ValueError as e:
        raise SocietalError(f"bad value for {env_id}: {e}") from None
    except Exception as e:  # anything else a constructor raises (FrozenLake's unknown map name is a KeyError)
        raise SocietalError(f"cannot make {env_id} with {kwargs}: {type(e).__name__}: {e}") from None
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
    """Copies of a Gymnasium env stepped one after another; a finished copy is reset in the same step.

    Copy i is seeded once with ``seed + i`` and keeps its own random stream. ``step`` can leave
    copies out (``mask``), so options that end at different times can run side by side. A Gymnasium
    env's state cannot be saved: a resumed run starts new episodes from seeded resets.
    """

    resumable, codes, indexed = False, None, False

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __init__(self, env_id: str, kwargs: dict, num_envs: int, device: torch.device) -> None:
        self.num_envs, self.device = num_envs, device
        self.envs = [gym.make(env_id, **kwargs) for _ in range(num_envs)]
        space = self.envs[0].observation_space
        self.discrete = isinstance(space, gym.spaces.Discrete)
        self.one_hot = torch.eye(space.n, device=device) if self.discrete else None
        self.first_action = int(self.envs[0].action_space.start)  # primitive i acts as action start + i
        self.obs: list = []

    def _tensor(self, obs: list) -> Tensor:
        if self.one_hot is not None:
            return self.one_hot[torch.as_tensor(obs, device=self.device)]
        return torch.as_tensor(np.stack(obs), dtype=torch.float32, device=self.device)

    def reset(self, seed: int | None = None) -> Tensor:
        self.obs = [e.reset(seed=None if seed is None else seed + i)[0] for i, e in enumerate(self.envs)]
        return self._tensor(self.obs)

    def step(self, action: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        n = self.num_envs
        reward, terminated, truncated = np.zeros(n, np.float32), np.zeros(n, bool), np.zeros(n, bool)
        final = list(self.obs)
        for i in range(n) if mask is None else mask.nonzero()[:, 0].tolist():
            final[i], reward[i], terminated[i], truncated[i], _ = self.envs[i].step(self.first_action + int(action[i]))
            self.obs[i] = self.envs[i].reset()[0] if terminated[i] or truncated[i] else final[i]
        t = lambda x: torch.as_tensor(x, device=self.device)  # noqa: E731
        return self._tensor(self.obs), t(reward), t(terminated), t(truncated), self._tensor(final)


BATCHED = {  # an env class (or a base class) → its batched twin in torch, imported only when used
    "societal.environments.tabular:TabularEnv": "societal.environments.tabular:TabularVecEnv",
    "societal.environments.tworooms:TwoRooms": "societal.environments.tworooms_vec:TwoRoomsVecEnv",
    "societal.environments.mental_rotation:MentalRotation":
        "societal.environments.mental_rotation:MentalRotationVecEnv",
    "gymnasium.envs.classic_control.cartpole:CartPoleEnv": "societal.environments.classic_vec:CartPoleVecEnv",
    "minatar.gym:BaseEnv": "societal.environments.minatar:MinAtarVecEnv",
}
"""A twin is given the unwrapped env; one with a ``max_episode_steps`` attribute also gets the limit of the
``TimeLimit`` wrapper that ``gymnasium.make`` put around it (MiniGrid's twins keep their own limit)."""


def register_batched(env_class: str, vec_class: str) -> None:
    """Step envs of ``env_class`` (``"module:Class"``, subclasses included) as ``vec_class(env, num_envs, device)``."""
    BATCHED[env_class] = vec_class


def make_vec(env_id: str, kwargs: dict, num_envs: int, device: torch.device) -> VecEnv:
    """The batched twin of the env (``BATCHED``), or its transition table in torch, or copies of it (``GymVecEnv``,
    also for rendering, which needs the real envs)."""
    env = make(env_id, **kwargs)
    if kwargs.get("render_mode") is None:
        for cls in type(env.unwrapped).__mro__:
            if (twin := BATCHED.get(f"{cls.__module__}:{cls.__qualname__}")) is not None:
                module, name = twin.split(":")
                vec = getattr(importlib.import_module(module), name)(env.unwrapped, num_envs, device)
                if hasattr(vec, "max_episode_steps"):
                    vec.max_episode_steps = env.spec.max_episode_steps if env.spec is not None else None
                return vec
        if (table := from_transition_table(env)) is not None:
            return TabularVecEnv(table, num_envs, device)
    return GymVecEnv(env_id, kwargs, num_envs, device)
