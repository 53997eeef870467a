"""What every batched MinAtar twin shares: MinAtar's ``Environment`` wrapper (sticky actions, the action set)
and the ``VecEnv`` contract (a finished copy is reset in the same step, masks, the final observation)."""

from __future__ import annotations

import torch
from torch import Tensor

from societal.environments.minatar.draws import Draws, TorchDraws
from societal.environments.state import SavedState


class MinAtarTwin(SavedState):
    """``num_envs`` copies of one MinAtar game stepped together in torch.

    A game subclass names its state tensors in ``GAME_STATE`` and defines ``_reset(mask)`` (MinAtar's
    ``Env.reset`` for the copies in ``mask``, drawing as it draws), ``_act(action, mask)`` (``Env.act`` for the
    copies in ``mask``: their rewards ``[B]`` float and which end ``[B]`` bool, copies outside ``mask``
    unchanged) and ``_observe()`` (``Env.state()`` of every copy: ``[B, 10, 10, C]`` bool).
    """

    discrete, codes, indexed = False, None, False
    GAME_STATE: tuple[str, ...] = ()

    def __init__(self, env, num_envs: int, device: torch.device | str = "cpu") -> None:
        game = env.game  # minatar.Environment: its sticky actions; env.game.env is the game itself
        self.num_envs, self.device = num_envs, torch.device(device)
        # only games with a difficulty ramp keep the flag (Breakout's and Freeway's ``Env`` ignore it)
        self.ramping: bool = getattr(game.env, "ramping", False)
        self.sticky_action_prob: float = game.sticky_action_prob
        self.action_set = torch.as_tensor(env.action_set, device=self.device)
        self.max_episode_steps: int | None = None  # set by ``make_vec`` from ``gymnasium.make``'s TimeLimit
        self.generator = torch.Generator(self.device)
        self.generator.seed()
        self.draws: Draws = TorchDraws(self.generator)
        # MinAtar keeps the last action across episodes (``Environment.reset`` does not clear it)
        self.last_action = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.t = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self._allocate()
        self._reset(torch.ones(num_envs, dtype=torch.bool, device=self.device))

    @property
    def STATE(self) -> tuple[str, ...]:
        return ("last_action", "t", *self.GAME_STATE)

    def reset(self, seed: int | None = None) -> Tensor:
        if seed is not None:
            self.generator.manual_seed(seed)
        everyone = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        self._reset(everyone)
        self.t = torch.zeros_like(self.t)
        return self._observe().float()

    def step(self, action: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        everyone = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        stepped = everyone if mask is None else mask.to(self.device)
        chosen = self.action_set[action.to(self.device)]
        sticky = self.draws.rand(stepped)[:, 0] < self.sticky_action_prob
        chosen = torch.where(sticky, self.last_action, chosen)
        self.last_action = torch.where(stepped, chosen, self.last_action)
        reward, terminated = self._act(chosen, stepped)
        reward, terminated = torch.where(stepped, reward, 0.0), terminated & stepped
        self.t = self.t + stepped.long()  # never in place: a loaded state_dict's tensors are not copied
        limit = self.max_episode_steps
        truncated = stepped & (self.t >= limit) if limit is not None else torch.zeros_like(terminated)
        final = self._observe().float()
        done = terminated | truncated
        if not done.any():
            return final.clone(), reward.float(), terminated, truncated, final
        self._reset(done)
        self.t = self.t.masked_fill(done, 0)
        return self._observe().float(), reward.float(), terminated, truncated, final

    def _commit(self, mask: Tensor, **values: Tensor | int | bool) -> None:
        """Set each named state tensor to its new value where ``mask`` holds: ``mask`` is ``[B]`` (whole copies) or
        a leading part of the tensor's shape (single slots)."""
        for name, value in values.items():
            old = getattr(self, name)
            setattr(self, name, torch.where(mask.view(*mask.shape, *[1] * (old.dim() - mask.dim())), value, old))

    def _allocate(self) -> None:
        """Create the tensors of ``GAME_STATE`` (any values: ``_reset`` of every copy follows)."""
        raise NotImplementedError

    def _reset(self, mask: Tensor) -> None:
        raise NotImplementedError

    def _act(self, action: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _observe(self) -> Tensor:
        raise NotImplementedError
