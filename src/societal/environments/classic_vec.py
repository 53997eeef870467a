"""Gymnasium's CartPole (``CartPole-v0``/``v1``) vectorised natively in torch: many copies per step.

Why it is exact: ``step`` is ``CartPoleEnv.step``'s arithmetic, operation for operation, in float64 as
Gymnasium's NumPy state is, observations cast to float32 as it casts them; termination is its threshold
test and truncation the ``TimeLimit`` that ``gymnasium.make`` puts around it (``max_episode_steps``, kept
apart from termination: both can hold at once, as in Gymnasium). Starts are drawn uniformly from
[-0.05, 0.05]⁴ as ``reset`` draws them, with a torch generator instead of Gymnasium's random stream.
Gymnasium's own ``CartPoleVectorEnv`` would do the arithmetic in NumPy, but resets a finished copy one
step later (its autoreset) and leaves the time limit to the caller; this twin keeps the contract of
``societal.environments.vector.VecEnv`` (a finished copy is reset in the same step).
"""

from __future__ import annotations

import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from torch import Tensor

from societal.environments.state import SavedState


class CartPoleVecEnv(SavedState):
    """``num_envs`` copies of a CartPole env stepped together in torch, reset in the same step."""

    discrete, codes, indexed = False, None, False
    STATE = ("state", "t")

    def __init__(self, env: CartPoleEnv, num_envs: int, device: torch.device | str = "cpu") -> None:
        self.num_envs, self.device, self.env = num_envs, torch.device(device), env
        self.sutton_barto = env._sutton_barto_reward
        self.max_episode_steps: int | None = None  # set by ``make_vec`` from ``gymnasium.make``'s TimeLimit
        self.generator = torch.Generator(self.device)
        self.generator.seed()
        self.state = torch.zeros(num_envs, 4, dtype=torch.float64, device=self.device)
        self.t = torch.zeros(num_envs, dtype=torch.long, device=self.device)

    def _starts(self) -> Tensor:
        u = torch.rand(self.num_envs, 4, dtype=torch.float64, generator=self.generator, device=self.device)
        return u * 0.1 - 0.05

    def reset(self, seed: int | None = None) -> Tensor:
        if seed is not None:
            self.generator.manual_seed(seed)
        self.state, self.t = self._starts(), torch.zeros_like(self.t)
        return self.state.float()

    def advance(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """``CartPoleEnv.step``'s physics for a batch: the next states ``[B, 4]`` and which terminate ``[B]``."""
        e = self.env
        x, x_dot, theta, theta_dot = state.unbind(1)
        force = torch.where(action == 1, e.force_mag, -e.force_mag).to(torch.float64)
        costheta, sintheta = torch.cos(theta), torch.sin(theta)
        temp = (force + e.polemass_length * torch.square(theta_dot) * sintheta) / e.total_mass
        thetaacc = (e.gravity * sintheta - costheta * temp) / (
            e.length * (4.0 / 3.0 - e.masspole * torch.square(costheta) / e.total_mass))
        xacc = temp - e.polemass_length * thetaacc * costheta / e.total_mass
        if e.kinematics_integrator == "euler":
            x, x_dot = x + e.tau * x_dot, x_dot + e.tau * xacc
            theta, theta_dot = theta + e.tau * theta_dot, theta_dot + e.tau * thetaacc
        else:  # semi-implicit euler
            x_dot = x_dot + e.tau * xacc
            x = x + e.tau * x_dot
            theta_dot = theta_dot + e.tau * thetaacc
            theta = theta + e.tau * theta_dot
        terminated = (x < -e.x_threshold) | (x > e.x_threshold) | (theta < -e.theta_threshold_radians) | (
            theta > e.theta_threshold_radians)
        return torch.stack([x, x_dot, theta, theta_dot], 1), terminated

    def step(self, action: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        final, terminated = self.advance(self.state, action.to(self.device))
        stepped = torch.ones_like(terminated) if mask is None else mask.to(self.device)
        final, terminated = torch.where(stepped[:, None], final, self.state), terminated & stepped
        self.t += stepped.long()
        limit = self.max_episode_steps
        truncated = stepped & (self.t >= limit) if limit is not None else torch.zeros_like(terminated)
        reward = -terminated.float() if self.sutton_barto else stepped.float()  # 0 for copies left out
        done = terminated | truncated
        self.state = torch.where(done[:, None], self._starts(), final)
        self.t.masked_fill_(done, 0)
        return self.state.float(), reward, terminated, truncated, final.float()
