"""MinAtar's Freeway, batched in torch.

Exact because ``_act`` is ``freeway.Env.act`` with each ``if`` a mask over copies (the eight cars at once: only the
car on the chicken's row can hit it, so MinAtar's visiting them in turn cannot matter), and it draws the cars'
speeds (``randint(1, 6, 8)`` then ``rand(8)``) exactly when MinAtar does: at a reset and when the chicken gets
across. A copy's state is MinAtar's own: the chicken's row and move timer, the 2500-step terminal timer, and each
car's column, countdown and signed speed as ``[B, 8]`` (car ``i`` drives on row ``i + 1``).
"""

from __future__ import annotations

import torch
from minatar.environments.freeway import player_speed, time_limit
from torch import Tensor

from societal.environments.minatar.base import MinAtarTwin


class FreewayTwin(MinAtarTwin):
    GAME_STATE = ("pos", "move_timer", "terminate_timer", "car_x", "car_timer", "car_speed")

    def _allocate(self) -> None:
        for name in self.GAME_STATE:
            shape = (self.num_envs, 8) if name.startswith("car") else (self.num_envs,)
            setattr(self, name, torch.zeros(shape, dtype=torch.long, device=self.device))
        self.lines, self.rows = torch.arange(10, device=self.device), torch.arange(1, 9, device=self.device)

    def _randomize_cars(self, mask: Tensor) -> None:
        speeds = self.draws.randint(mask, 1, 6, 8)
        speeds = speeds * torch.sign(self.draws.rand(mask, 8) - 0.5).long()
        self._commit(mask, car_timer=speeds.abs(), car_speed=speeds)

    def _reset(self, mask: Tensor) -> None:
        self._randomize_cars(mask)
        self._commit(mask, car_x=0, pos=9, move_timer=player_speed, terminate_timer=time_limit)

    def _act(self, action: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        ready = self.move_timer == 0
        up, down = ready & (action == 2), ready & (action == 4)
        pos = torch.where(up, (self.pos - 1).clamp(min=0), torch.where(down, (self.pos + 1).clamp(max=9), self.pos))
        move_timer = torch.where(up | down, player_speed, self.move_timer)
        across = mask & (pos == 0)
        self._randomize_cars(across)  # new speeds, before the cars move
        pos = torch.where(across, 9, pos)
        moves = self.car_timer == 0
        x = torch.where(moves, (self.car_x + torch.where(self.car_speed > 0, 1, -1)) % 10, self.car_x)  # wraps
        # MinAtar visits the cars in turn, each hitting the chicken on its row before or after it moves; only the
        # car on the chicken's row can, and a hit sends it to row 9, where no car drives: the order cannot matter
        hit = ((self.rows == pos[:, None]) & ((self.car_x == 4) | (x == 4))).any(1)
        pos = torch.where(hit, 9, pos)
        timer = torch.where(moves, self.car_speed.abs(), self.car_timer - 1)
        terminate_timer = self.terminate_timer - 1
        self._commit(mask, pos=pos, move_timer=move_timer - (move_timer > 0).long(), terminate_timer=terminate_timer,
                     car_x=x, car_timer=timer)
        return across.float(), terminate_timer < 0

    def _observe(self) -> Tensor:
        state = torch.zeros(self.num_envs, 10, 10, 7, dtype=torch.bool, device=self.device)
        state[:, :, 4, 0] = self.lines == self.pos[:, None]
        state[:, 1:9, :, 1] = self.lines == self.car_x[..., None]
        # a car's trail is the cell behind it, in the channel of its speed (speed 1..5: channels 2..6)
        back = (self.car_x - torch.where(self.car_speed > 0, 1, -1)) % 10
        speed = self.car_speed.abs()[..., None, None] == torch.arange(1, 6, device=self.device)
        state[:, 1:9, :, 2:] = (self.lines == back[..., None])[..., None] & speed
        return state
