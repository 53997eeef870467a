"""MinAtar's games batched in torch: ``MinAtarVecEnv`` steps many copies of the game of a ``minatar.gym`` env.

Each game is a ``MinAtarTwin`` (``base``) in its own module, imported when its game is first batched.
"""

from __future__ import annotations

import importlib

import torch

from societal.environments.minatar.base import MinAtarTwin
from societal.errors import SocietalError

TWINS = {  # MinAtar's game name → its twin
    "asterix": "societal.environments.minatar.asterix:AsterixTwin",
    "breakout": "societal.environments.minatar.breakout:BreakoutTwin",
    "freeway": "societal.environments.minatar.freeway:FreewayTwin",
    "seaquest": "societal.environments.minatar.seaquest:SeaquestTwin",
    "space_invaders": "societal.environments.minatar.space_invaders:SpaceInvadersTwin",
}


def MinAtarVecEnv(env, num_envs: int, device: torch.device | str = "cpu") -> MinAtarTwin:
    """``num_envs`` copies of the game of ``env`` (a ``minatar.gym.BaseEnv``), with its action set, sticky actions
    and difficulty ramp."""
    name = env.game.env_name
    if name not in TWINS:
        raise SocietalError(f"no batched twin of MinAtar's {name!r}; there are twins of {', '.join(TWINS)}")
    module, cls = TWINS[name].split(":")
    return getattr(importlib.import_module(module), cls)(env, num_envs, device)
