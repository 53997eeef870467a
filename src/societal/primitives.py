"""Primitives: what the winner of an auction does to the state.

A primitive kind turns the winning primitives of a batch of auctions into one transition of the
society's (semi-)MDP. The rollout only cares about the duration τ it gets back (γ^τ discounts
the next bid). Options and functions are added by their own issues.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from societal.environments.vector import VecEnv


@dataclass
class Transition:
    obs: Tensor  # [B, *obs_shape], already reset where the episode ended
    reward: Tensor  # [B], discounted inside the transformation
    terminated: Tensor  # [B] bool
    truncated: Tensor  # [B] bool
    duration: Tensor  # [B] env steps taken (τ)
    final_obs: Tensor  # [B, *obs_shape] where each episode ended (= obs where it goes on)


class LiteralActions:
    """Primitive i is action i of a Discrete action space: one environment step (τ = 1)."""

    def __init__(self, num_actions: int) -> None:
        self.num_primitives = num_actions

    def apply(self, env: VecEnv, primitive: Tensor) -> Transition:
        obs, reward, terminated, truncated, final_obs = env.step(primitive)
        return Transition(obs, reward, terminated, truncated, torch.ones_like(reward), final_obs)
