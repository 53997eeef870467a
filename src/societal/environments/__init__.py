"""Environments: the paper's tasks, registered with Gymnasium under ``societal/``."""

import gymnasium as gym

from societal.environments.mdp import FiniteMDP, finite_mdp, value_iteration
from societal.environments.tabular import Bandit, Chain, Duality, TabularEnv

for _name in ("Bandit", "Chain", "Duality"):
    if f"societal/{_name}-v0" not in gym.registry:
        gym.register(id=f"societal/{_name}-v0", entry_point=f"societal.environments.tabular:{_name}")

__all__ = ["Bandit", "Chain", "Duality", "FiniteMDP", "TabularEnv", "finite_mdp", "value_iteration"]
