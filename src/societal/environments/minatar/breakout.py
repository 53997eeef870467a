"""MinAtar's Breakout, batched in torch.

Exact because ``_act`` is ``breakout.Env.act`` with each ``if`` turned into a mask over copies, tested in the same
order on the same integers, and it draws only where MinAtar draws (``randint(2)``, the ball's side, at a reset).
A copy's state is MinAtar's own variables: ball, trail (the ball's last cell), paddle, direction and strike as
``[B]`` tensors, the bricks as a ``[B, 10, 10]`` bool map.
"""

from __future__ import annotations

import torch
from torch import Tensor

from societal.environments.minatar.base import MinAtarTwin


class BreakoutTwin(MinAtarTwin):
    GAME_STATE = ("ball_x", "ball_y", "ball_dir", "last_x", "last_y", "pos", "strike", "bricks")

    def _allocate(self) -> None:
        long = dict(dtype=torch.long, device=self.device)
        for name in self.GAME_STATE[:6]:
            setattr(self, name, torch.zeros(self.num_envs, **long))
        self.strike = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        self.bricks = torch.zeros(self.num_envs, 10, 10, dtype=torch.bool, device=self.device)
        self.lines = torch.arange(10, device=self.device)
        self.wall = ((self.lines >= 1) & (self.lines <= 3))[:, None].expand(10, 10)  # rows 1..3 of bricks
        # direction 0..3: up-left, up-right, down-right, down-left; how it moves and how each bounce turns it
        self.dx, self.dy = torch.tensor([-1, 1, 1, -1], **long), torch.tensor([-1, -1, 1, 1], **long)
        self.flip_x, self.flip_y = torch.tensor([1, 0, 3, 2], **long), torch.tensor([3, 2, 1, 0], **long)
        self.flip_both = torch.tensor([2, 3, 0, 1], **long)

    def _reset(self, mask: Tensor) -> None:
        right = self.draws.randint(mask, 0, 2)[:, 0]  # 0: from the left going down-right, 1: the right, down-left
        x = right * 9
        self._commit(mask, ball_x=x, ball_y=3, ball_dir=2 + right, last_x=x, last_y=3, pos=4, strike=False,
                     bricks=self.wall)

    def _act(self, action: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        pos = torch.where(action == 1, (self.pos - 1).clamp(min=0), self.pos)
        pos = torch.where(action == 3, (pos + 1).clamp(max=9), pos)
        d = self.ball_dir
        x, y = self.ball_x + self.dx[d], self.ball_y + self.dy[d]
        d = torch.where((x < 0) | (x > 9), self.flip_x[d], d)
        x = x.clamp(0, 9)
        top = y < 0
        d, y = torch.where(top, self.flip_y[d], d), y.clamp(min=0)
        # a live ball is above row 9, so y is a row here
        brick = ~top & self.bricks[torch.arange(self.num_envs, device=self.device), y, x]
        breaks = brick & ~self.strike  # a ball that just broke a brick goes through the next one
        bricks = self.bricks & ~(breaks[:, None, None] & self._cell(y, x))
        d, y = torch.where(breaks, self.flip_y[d], d), torch.where(breaks, self.ball_y, y)
        bottom = ~top & ~brick & (y == 9)
        bricks = torch.where((bottom & ~bricks.flatten(1).any(1))[:, None, None], self.wall, bricks)
        under = bottom & (self.ball_x == pos)  # the paddle under the ball's last cell sends it straight back
        edge = bottom & ~under & (x == pos)  # the paddle where it lands sends it back the way it came
        d = torch.where(under, self.flip_y[d], torch.where(edge, self.flip_both[d], d))
        y = torch.where(under | edge, self.ball_y, y)
        self._commit(mask, pos=pos, last_x=self.ball_x, last_y=self.ball_y, ball_x=x, ball_y=y, ball_dir=d,
                     strike=brick, bricks=bricks)
        return breaks.float(), bottom & ~under & ~edge

    def _cell(self, y: Tensor, x: Tensor) -> Tensor:
        """``[B, 10, 10]``: each copy's cell ``(y, x)``."""
        return (self.lines[:, None] == y[:, None, None]) & (self.lines == x[:, None, None])

    def _observe(self) -> Tensor:
        paddle = self._cell(torch.full_like(self.pos, 9), self.pos)
        ball, trail = self._cell(self.ball_y, self.ball_x), self._cell(self.last_y, self.last_x)
        return torch.stack([paddle, ball, trail, self.bricks], -1)
