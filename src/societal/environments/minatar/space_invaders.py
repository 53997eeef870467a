"""MinAtar's SpaceInvaders as a batched torch twin (``minatar/environments/space_invaders.py``).

Why it is exact: MinAtar already holds this game in 10×10 maps (aliens, friendly and enemy bullets), so the
twin keeps the same maps as ``[B, 10, 10]`` bool grids and ``_act`` repeats ``Env.act`` step for step: the same
rolls (a turning wave wraps its bottom row to the top, as ``np.roll`` does), the same timers (the move
interval shrinks to the number of aliens left, and each cleared wave ramps it down to 6) and the same choice
of the shooting alien (the nearest column, ties to the left, its lowest alien). The game draws nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor

from societal.environments.minatar.base import MinAtarTwin
from societal.environments.minatar.cells import assign, shift, spot

# MinAtar's constants and action indices
SHOT_COOL_DOWN, ENEMY_MOVE_INTERVAL, ENEMY_SHOT_INTERVAL = 5, 12, 10
LEFT, RIGHT, FIRE = 1, 3, 5


class SpaceInvadersTwin(MinAtarTwin):
    """``Env``'s state under its names (the maps as ``aliens``, ``f_bullets``, ``e_bullets``), batched."""

    GAME_STATE = ("pos", "f_bullets", "e_bullets", "aliens", "alien_dir", "enemy_move_interval",
                  "alien_move_timer", "alien_shot_timer", "ramp_index", "shot_timer")

    def _allocate(self) -> None:
        for name in self.GAME_STATE:
            shape, dtype = ((10, 10), torch.bool) if name in ("f_bullets", "e_bullets", "aliens") else ((), torch.long)
            setattr(self, name, torch.zeros(self.num_envs, *shape, dtype=dtype, device=self.device))
        self.wave = torch.zeros(10, 10, dtype=torch.bool, device=self.device)
        self.wave[0:4, 2:8] = True  # a fresh wave of aliens

    def _reset(self, mask: Tensor) -> None:
        empty = torch.zeros_like(self.wave)
        assign(self, mask, {
            "pos": 5, "f_bullets": empty, "e_bullets": empty, "aliens": self.wave, "alien_dir": -1,
            "enemy_move_interval": ENEMY_MOVE_INTERVAL, "alien_move_timer": ENEMY_MOVE_INTERVAL,
            "alien_shot_timer": ENEMY_SHOT_INTERVAL, "ramp_index": 0, "shot_timer": 0,
        })

    def _act(self, action: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        before = {name: getattr(self, name) for name in self.GAME_STATE}
        self._steer(action)
        self.f_bullets, self.e_bullets = shift(self.f_bullets, dy=-1), shift(self.e_bullets, dy=1)
        cannon = self._cannon()
        terminated = _meets(self.e_bullets, cannon) | _meets(self.aliens, cannon) | self._march(cannon)
        self._shoot()
        kills = self.aliens & self.f_bullets
        self.aliens, self.f_bullets = self.aliens & ~kills, self.f_bullets & ~kills
        self._tick()
        if not bool(mask.all()):  # copies outside the mask keep their state (the lines above made new tensors)
            assign(self, ~mask, before)
        return kills.flatten(1).sum(1).float(), terminated

    def _steer(self, action: Tensor) -> None:
        """Fire from the bottom row (when the cool-down allows), else move the cannon."""
        fire = (action == FIRE) & (self.shot_timer == 0)
        self.f_bullets = self.f_bullets | (self._cannon() & fire[:, None, None])
        self.shot_timer = torch.where(fire, SHOT_COOL_DOWN, self.shot_timer)
        pos = torch.where(action == LEFT, self.pos - 1, torch.where(action == RIGHT, self.pos + 1, self.pos))
        self.pos = pos.clamp(0, 9)

    def _cannon(self) -> Tensor:
        return spot(self.pos, torch.full_like(self.pos, 9))

    def _march(self, cannon: Tensor) -> Tensor:
        """Move the wave when its timer is up: sideways, or down and turning at an edge. Returns which copies
        it ended (the wave reached the bottom as it turned, or landed on the cannon)."""
        due = self.alien_move_timer == 0
        count = self.aliens.flatten(1).sum(1)
        self.alien_move_timer = torch.where(due, torch.minimum(count, self.enemy_move_interval), self.alien_move_timer)
        left, right = self.aliens[:, :, 0].any(1), self.aliens[:, :, 9].any(1)
        turn = due & ((left & (self.alien_dir < 0)) | (right & (self.alien_dir > 0)))
        bottom = turn & self.aliens[:, 9].any(1)
        sideways = torch.where((self.alien_dir < 0)[:, None, None], shift(self.aliens, dx=-1), shift(self.aliens, dx=1))
        # turning rolls the rows as np.roll does: a bottom row wraps to the top (the episode ends then anyway)
        moved = torch.where(turn[:, None, None], self.aliens.roll(1, dims=1), sideways)
        self.aliens = torch.where(due[:, None, None], moved, self.aliens)
        self.alien_dir = torch.where(turn, -self.alien_dir, self.alien_dir)
        return bottom | (due & _meets(self.aliens, cannon))

    def _shoot(self) -> None:
        """When the shot timer is up, the lowest alien of the column nearest the cannon (ties: the left one)
        drops a bullet. A wave is never empty here: a cleared wave is replaced at the end of each step."""
        due = self.alien_shot_timer == 0
        self.alien_shot_timer = torch.where(due, ENEMY_SHOT_INTERVAL, self.alien_shot_timer)
        columns = torch.arange(10, device=self.device)
        distance = (columns - self.pos[:, None]).abs() * 10 + columns  # MinAtar's stable sort by distance
        column = torch.where(self.aliens.any(1), distance, 1000).argmin(1)
        in_column = self.aliens.gather(2, column[:, None, None].expand(-1, 10, 1))[..., 0]
        row = torch.where(in_column, columns, -1).amax(1)
        self.e_bullets = self.e_bullets | (spot(column, row) & due[:, None, None])

    def _tick(self) -> None:
        """Timers, and a new wave (faster, down to an interval of 6, when ramping) once one is cleared."""
        self.shot_timer = (self.shot_timer - 1).clamp(min=0)
        self.alien_move_timer, self.alien_shot_timer = self.alien_move_timer - 1, self.alien_shot_timer - 1
        cleared = ~self.aliens.flatten(1).any(1)
        if self.ramping:
            faster = cleared & (self.enemy_move_interval > 6)
            self.enemy_move_interval = self.enemy_move_interval - faster.long()
            self.ramp_index = self.ramp_index + faster.long()
        self.aliens = torch.where(cleared[:, None, None], self.wave, self.aliens)

    def _observe(self) -> Tensor:
        left = (self.alien_dir < 0)[:, None, None]
        return torch.stack([
            self._cannon(), self.aliens, self.aliens & left, self.aliens & ~left,
            self.f_bullets, self.e_bullets,
        ], dim=-1)


def _meets(grid: Tensor, cannon: Tensor) -> Tensor:
    return (grid & cannon).flatten(1).any(1)
