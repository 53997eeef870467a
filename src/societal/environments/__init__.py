"""Environments: the paper's tasks and generated finite tasks, registered with Gymnasium under ``societal/``, and
MinAtar's ``MinAtar/`` ids (MinAtar's games have batched twins in ``societal.environments.minatar``).

Registering imports nothing heavy (every entry point is a string), so ``import societal`` makes every
``societal/`` id available at no cost; the classes below are imported when first used.
"""

import importlib

import gymnasium as gym

from societal.environments.graphs import GRAPHS


def _register(env_id: str, entry_point: str, **kwargs) -> None:
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, kwargs=kwargs)


for _name in ("Bandit", "Chain", "Duality"):
    _register(f"societal/{_name}-v0", f"societal.environments.tabular:{_name}")
for _name in ("RandomMDP", "GridWorld"):  # generated tasks, each fixed by its seed
    _register(f"societal/{_name}-v0", f"societal.environments.generated:{_name}")
for _name in ("Deadline", "Lure"):  # generated tasks that break a market (``pitfalls``)
    _register(f"societal/{_name}-v0", f"societal.environments.pitfalls:{_name}")
# TwoRooms (minigrid is imported only when one of these is made): name -> (start room, goal)
for _name, (_room, _goal) in {"RedGoal": (0, "red"), "GreenGoal": (1, "green"), "BlueGoal": (1, "blue"),
                              "Green": (0, "green"), "Blue": (0, "blue")}.items():
    _register(f"societal/{_name}TwoRooms-v0", "societal.environments.tworooms:TwoRooms", start_room=_room, goal=_goal)
for _name in GRAPHS:  # the follow-up's transfer tasks (its §6)
    _register(f"societal/{_name}-v0", "societal.environments.transfer:GraphTask", name=_name)
_register("societal/BanditTransfer-v0", "societal.environments.transfer:BanditTransfer")
# MNIST and the classifier load only when it is made
_register("societal/MentalRotation-v0", "societal.environments.mental_rotation:MentalRotation")
# MinAtar's ids as ``minatar.gym.register_envs`` registers them (MinAtar registers none on import); an id the user
# registered already is left as it is
for _game in ("asterix", "breakout", "freeway", "seaquest", "space_invaders"):
    for _version, _minimal in (("v0", False), ("v1", True)):
        _register(f"MinAtar/{_game.title().replace('_', '')}-{_version}", "minatar.gym:BaseEnv", game=_game,
                  use_minimal_action_set=_minimal)

_LAZY = {"Bandit": "tabular", "Chain": "tabular", "Duality": "tabular", "TabularEnv": "tabular",
         "finite_mdp": "tabular", "FiniteMDP": "mdp", "value_iteration": "mdp"}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"societal.environments.{_LAZY[name]}"), name)


__all__ = list(_LAZY)
