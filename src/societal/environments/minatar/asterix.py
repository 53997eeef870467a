"""MinAtar's Asterix, batched in torch.

Exact because ``_act`` is ``asterix.Env.act`` with each ``if`` a mask over copies, in MinAtar's order (spawn,
move the player, touch, move the entities, touch again, timers, difficulty ramp), and a spawn draws as MinAtar's
``_spawn_entity`` does: side and gold always, the free slot only when there is one. A copy's state is MinAtar's
own: the player, timers and ramp as ``[B]`` tensors and the eight entity slots as ``[B, 8]`` (slot ``i`` is row
``i + 1``; ``present`` is False where MinAtar's slot is ``None``).
"""

from __future__ import annotations

import torch
from minatar.environments.asterix import init_move_interval, init_spawn_speed, ramp_interval
from torch import Tensor

from societal.environments.minatar.base import MinAtarTwin

TIMERS = ("player_x", "player_y", "spawn_speed", "spawn_timer", "move_speed", "move_timer", "ramp_timer",
          "ramp_index")


class AsterixTwin(MinAtarTwin):
    GAME_STATE = (*TIMERS, "x", "present", "right", "gold")

    def _allocate(self) -> None:
        for name in TIMERS:
            setattr(self, name, torch.zeros(self.num_envs, dtype=torch.long, device=self.device))
        self.x = torch.zeros(self.num_envs, 8, dtype=torch.long, device=self.device)
        for name in ("present", "right", "gold"):  # ``right``: it moves right (it spawned on the left)
            setattr(self, name, torch.zeros(self.num_envs, 8, dtype=torch.bool, device=self.device))
        self.lines, self.rows = torch.arange(10, device=self.device), torch.arange(1, 9, device=self.device)

    def _reset(self, mask: Tensor) -> None:
        self._commit(mask, player_x=5, player_y=5, present=False, spawn_speed=init_spawn_speed,
                     spawn_timer=init_spawn_speed, move_speed=init_move_interval, move_timer=init_move_interval,
                     ramp_timer=ramp_interval, ramp_index=0)

    def _spawn(self, mask: Tensor) -> None:
        """``_spawn_entity`` for the copies in ``mask``: a random free slot gets an enemy or gold at an edge."""
        right = self.draws.rand(mask)[:, 0] < 1 / 2
        gold = self.draws.rand(mask)[:, 0] < 1 / 3
        free = ~self.present
        mask = mask & free.any(1)
        k = self.draws.randint(mask, 0, free.sum(1))  # the k-th free slot
        new = mask[:, None] & free & (free.cumsum(1) == k + 1)
        self._commit(new, x=torch.where(right, 0, 9)[:, None], present=True, right=right[:, None],
                     gold=gold[:, None])

    def _touch(self, live: Tensor, x: Tensor, player_x: Tensor, player_y: Tensor) -> tuple[Tensor, Tensor]:
        """Which entities of ``live`` (at columns ``x``) are gold taken by the player, and which copies end: an
        enemy is on the player."""
        touch = live & (x == player_x[:, None]) & (self.rows == player_y[:, None])
        return touch & self.gold, (touch & ~self.gold).any(1)

    def _act(self, action: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        spawning = mask & (self.spawn_timer == 0)
        self._spawn(spawning)
        spawn_timer = torch.where(spawning, self.spawn_speed, self.spawn_timer)
        px = torch.where(action == 1, (self.player_x - 1).clamp(min=0), self.player_x)
        px = torch.where(action == 3, (px + 1).clamp(max=9), px)
        py = torch.where(action == 2, (self.player_y - 1).clamp(min=1), self.player_y)
        py = torch.where(action == 4, (py + 1).clamp(max=8), py)
        taken, terminated = self._touch(self.present, self.x, px, py)
        present = self.present & ~taken
        moving = self.move_timer == 0
        stepping = present & moving[:, None]
        x = torch.where(stepping, self.x + torch.where(self.right, 1, -1), self.x)
        present = present & ~(stepping & ((x < 0) | (x > 9)))  # off the screen
        caught, ended = self._touch(stepping & present, x, px, py)
        move_timer = torch.where(moving, self.move_speed, self.move_timer)
        self._commit(mask, x=x, present=present & ~caught, player_x=px, player_y=py, spawn_timer=spawn_timer - 1,
                     move_timer=move_timer - 1)
        if self.ramping:
            self._ramp(mask)
        return (taken.sum(1) + caught.sum(1)).float(), terminated | ended

    def _ramp(self, mask: Tensor) -> None:
        """When the ramp timer has run out: spawn faster and, every other time, move faster (down to 1)."""
        ramps = mask & ((self.spawn_speed > 1) | (self.move_speed > 1))
        waits = ramps & (self.ramp_timer >= 0)
        self._commit(waits, ramp_timer=self.ramp_timer - 1)
        level = ramps & ~waits
        faster = (self.move_speed > 1) & (self.ramp_index % 2 == 1)
        self._commit(level, move_speed=self.move_speed - faster.long(), ramp_index=self.ramp_index + 1,
                     spawn_speed=self.spawn_speed - (self.spawn_speed > 1).long(), ramp_timer=ramp_interval)

    def _observe(self) -> Tensor:
        state = torch.zeros(self.num_envs, 10, 10, 4, dtype=torch.bool, device=self.device)
        state[:, :, :, 0] = (self.lines[:, None] == self.player_y[:, None, None]) & (
            self.lines == self.player_x[:, None, None])
        here = self.present[..., None] & (self.lines == self.x[..., None])  # [B, 8, 10]
        state[:, 1:9, :, 1] = here & ~self.gold[..., None]
        state[:, 1:9, :, 3] = here & self.gold[..., None]
        # the trail is the cell behind, where it is on the screen
        back = self.x - torch.where(self.right, 1, -1)
        state[:, 1:9, :, 2] = self.present[..., None] & (self.lines == back[..., None])
        return state
