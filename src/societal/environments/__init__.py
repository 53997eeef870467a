"""Environments: the paper's tasks and generated finite tasks, registered with Gymnasium under ``societal/``."""

import gymnasium as gym

from societal.environments import transfer
from societal.environments.mdp import FiniteMDP, value_iteration
from societal.environments.tabular import Bandit, Chain, Duality, TabularEnv, finite_mdp

for _name in ("Bandit", "Chain", "Duality"):
    if f"societal/{_name}-v0" not in gym.registry:
        gym.register(id=f"societal/{_name}-v0", entry_point=f"societal.environments.tabular:{_name}")
for _name in ("RandomMDP", "GridWorld"):  # generated tasks, each fixed by its seed
    if f"societal/{_name}-v0" not in gym.registry:
        gym.register(id=f"societal/{_name}-v0", entry_point=f"societal.environments.generated:{_name}")

# TwoRooms (minigrid is imported only when one of these is made): name -> (start room, goal)
for _name, (_room, _goal) in {
    "RedGoal": (0, "red"),
    "GreenGoal": (1, "green"),
    "BlueGoal": (1, "blue"),
    "Green": (0, "green"),
    "Blue": (0, "blue"),
}.items():
    if f"societal/{_name}TwoRooms-v0" not in gym.registry:
        gym.register(
            id=f"societal/{_name}TwoRooms-v0",
            entry_point="societal.environments.tworooms:TwoRooms",
            kwargs={"start_room": _room, "goal": _goal},
        )

transfer.register()  # the follow-up's transfer tasks (its §6)

if "societal/MentalRotation-v0" not in gym.registry:  # MNIST and the classifier load only when it is made
    gym.register(id="societal/MentalRotation-v0", entry_point="societal.environments.mental_rotation:MentalRotation")

__all__ = ["Bandit", "Chain", "Duality", "FiniteMDP", "TabularEnv", "finite_mdp", "value_iteration"]
