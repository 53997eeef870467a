"""MinAtar's Seaquest as a batched torch twin (``minatar/environments/seaquest.py``).

Why it is exact: ``_act`` runs ``Env.act``'s phases in its order (spawns, the player, friendly bullets, divers,
enemies, enemy bullets, timers and surfacing) with its draws, and wherever MinAtar's list order decides an
outcome the twin ranks entities by the step they spawned in, as MinAtar's lists do: the first fish (else sub)
on a cell takes a bullet, enemies moving onto a bullet claim it subs first and each list last-spawned first,
divers take the free seats last-spawned first. Enemies and divers are fixed-capacity slots with an ``alive``
flag (the capacities are derived below); bullets are 10×10 grids, one per kind and direction.
"""

from __future__ import annotations

import torch
from torch import Tensor

from societal.environments.minatar.base import MinAtarTwin
from societal.environments.minatar.cells import assign, at, board, first, paint, shift, spot

# MinAtar's constants and action indices
MAX_OXYGEN, INIT_SPAWN_SPEED, DIVER_SPAWN_SPEED, INIT_MOVE_INTERVAL = 200, 20, 30, 5
SHOT_COOL_DOWN, ENEMY_SHOT_INTERVAL, DIVER_MOVE_INTERVAL = 5, 10, 5
LEFT, UP, RIGHT, DOWN, FIRE = 1, 2, 3, 4, 5

# Capacities. An enemy spawned at move interval m first moves m steps later, then at least every m + 1 steps
# (the interval only shrinks), and its 10th move takes it off the board: it is gone within 10m + 9 steps. At
# most one enemy spawns a step, e_spawn_speed steps apart, and m > 2 only at ramp indices below 6, where
# e_spawn_speed >= 15: of those (gone within 59 steps) at most 4 are alive, of the later ones (m = 2, gone
# within 29 steps) at most 30.
ENEMIES = 34
# A diver moves every 6 steps and leaves within 59 steps of spawning; divers spawn exactly 30 steps apart.
DIVERS = 2
# Friendly bullets fly one cell a step and are fired at least 5 steps apart from a sub that moves at most one
# cell a step, so no two ever share a cell (MinAtar's "first bullet on the cell" is the only one); two enemy
# bullets on one cell heading one way would move as one, so a grid per direction holds all of them exactly.
# MinAtar removes entries with ``list.remove`` (the first equal entry), which is always the entry visited: one
# that leaves is the only entry off the board, and two entries of a list never agree in every field (divers
# of a row are 30 steps apart; two enemies on one cell differ in move timer, the later-spawned one trailing).

LATER_LIST = 1 << 40  # an order offset that puts one list after the other


class SeaquestTwin(MinAtarTwin):
    """``Env``'s scalars as ``[B]`` tensors (same names), enemies (``e_*``) and divers (``d_*``) as ``[B, K]``
    slots (a free slot's fields mean nothing), bullets as ``[B, 10, 10]`` grids: friendly ``f_*``, enemy
    ``b_*``, by direction."""

    GAME_STATE = (
        "sub_x", "sub_y", "sub_or", "oxygen", "diver_count", "shot_timer", "surface",
        "e_spawn_speed", "e_spawn_timer", "d_spawn_timer", "move_speed", "ramp_index",
        "f_right", "f_left", "b_right", "b_left",
        "e_alive", "e_sub", "e_x", "e_y", "e_lr", "e_move", "e_shot", "e_born",
        "d_alive", "d_x", "d_y", "d_lr", "d_move", "d_born",
    )

    def _allocate(self) -> None:
        def new(*shape: int, dtype: torch.dtype = torch.long) -> Tensor:
            return torch.zeros(self.num_envs, *shape, dtype=dtype, device=self.device)

        for name in ("sub_x", "sub_y", "oxygen", "diver_count", "shot_timer", "e_spawn_speed", "e_spawn_timer",
                     "d_spawn_timer", "move_speed", "ramp_index"):
            setattr(self, name, new())
        self.sub_or, self.surface = new(dtype=torch.bool), new(dtype=torch.bool)
        for name in ("f_right", "f_left", "b_right", "b_left"):
            setattr(self, name, new(10, 10, dtype=torch.bool))
        for prefix, capacity in (("e", ENEMIES), ("d", DIVERS)):
            for field in ("alive", "lr"):
                setattr(self, f"{prefix}_{field}", new(capacity, dtype=torch.bool))
            for field in ("x", "y", "move", "born"):
                setattr(self, f"{prefix}_{field}", new(capacity))
        self.e_sub, self.e_shot = new(ENEMIES, dtype=torch.bool), new(ENEMIES)

    def _reset(self, mask: Tensor) -> None:
        empty = torch.zeros(10, 10, dtype=torch.bool, device=self.device)
        assign(self, mask, {
            "sub_x": 5, "sub_y": 0, "sub_or": False, "oxygen": MAX_OXYGEN, "diver_count": 0, "shot_timer": 0,
            "surface": True, "e_spawn_speed": INIT_SPAWN_SPEED, "e_spawn_timer": INIT_SPAWN_SPEED,
            "d_spawn_timer": DIVER_SPAWN_SPEED, "move_speed": INIT_MOVE_INTERVAL, "ramp_index": 0,
            "f_right": empty, "f_left": empty, "b_right": empty, "b_left": empty, "e_alive": False, "d_alive": False,
        })

    def _act(self, action: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        before = {name: getattr(self, name) for name in self.GAME_STATE}
        self._spawn(mask)
        self._steer(action)
        reward = self._fire_friendly_bullets()
        self._rescue_divers()
        sunk, rammed = self._move_enemies()
        shot = self._move_enemy_bullets()
        bonus, lost = self._tick()
        if not bool(mask.all()):  # copies outside the mask keep their state (the phases made new tensors)
            assign(self, ~mask, before)
        return (reward + sunk + bonus).float(), rammed | shot | lost

    def _spawn(self, mask: Tensor) -> None:
        """``_spawn_enemy`` and ``_spawn_diver`` for the copies whose timers are up, drawing as MinAtar draws."""
        due = mask & (self.e_spawn_timer == 0)
        lr_sub = self.draws.rand(due, 2)  # lr, then is_sub
        y = self.draws.randint(due, 1, 9)[:, 0]
        lr, sub = lr_sub[:, 0] < 1 / 2, lr_sub[:, 1] < 1 / 3
        # no spawn into a row where an enemy heads the other way (the timer restarts all the same)
        blocked = (self.e_alive & (self.e_y == y[:, None]) & (self.e_lr != lr[:, None])).any(1)
        slot = _free_slot(self.e_alive, due & ~blocked)
        assign(self, slot, {**_entity("e", lr, y, self.move_speed, self.t), "e_sub": sub[:, None],
                            "e_shot": ENEMY_SHOT_INTERVAL})
        self.e_spawn_timer = torch.where(due, self.e_spawn_speed, self.e_spawn_timer)

        due = mask & (self.d_spawn_timer == 0)
        lr = self.draws.rand(due)[:, 0] < 1 / 2
        y = self.draws.randint(due, 1, 9)[:, 0]
        slot = _free_slot(self.d_alive, due)
        assign(self, slot, _entity("d", lr, y, torch.full_like(y, DIVER_MOVE_INTERVAL), self.t))
        self.d_spawn_timer = torch.where(due, DIVER_SPAWN_SPEED, self.d_spawn_timer)

    def _steer(self, action: Tensor) -> None:
        """Fire (when the cool-down allows), else move and turn the sub."""
        fire = (action == FIRE) & (self.shot_timer == 0)
        fired = spot(self.sub_x, self.sub_y) & fire[:, None, None]
        self.f_right = self.f_right | (fired & self.sub_or[:, None, None])
        self.f_left = self.f_left | (fired & ~self.sub_or[:, None, None])
        self.shot_timer = torch.where(fire, SHOT_COOL_DOWN, self.shot_timer)
        left, right = action == LEFT, action == RIGHT
        x = torch.where(left, self.sub_x - 1, torch.where(right, self.sub_x + 1, self.sub_x))
        self.sub_x, self.sub_or = x.clamp(0, 9), torch.where(left | right, right, self.sub_or)
        y = torch.where(action == UP, self.sub_y - 1, torch.where(action == DOWN, self.sub_y + 1, self.sub_y))
        self.sub_y = y.clamp(0, 8)

    def _fire_friendly_bullets(self) -> Tensor:
        """Move the friendly bullets; one that lands on enemies sinks the first fish there (in list order, which
        is spawn order), else the first sub, and is spent."""
        self.f_right, self.f_left = shift(self.f_right, dx=1), shift(self.f_left, dx=-1)
        targets = self.e_alive & at(self.f_right | self.f_left, self.e_x, self.e_y)
        hit = first(self.e_x, self.e_y, targets, torch.where(self.e_sub, LATER_LIST, 0) + self.e_born)
        self._spend_bullets(self.e_x, self.e_y, hit)
        self.e_alive = self.e_alive & ~hit
        return hit.sum(1)

    def _rescue_divers(self) -> None:
        """Divers on the sub's cell, before or after their move, board it while it holds fewer than 6."""
        here = self._on_sub(self.d_x, self.d_y)
        moves = self.d_alive & (self.d_move == 0)
        x = torch.where(moves, self.d_x + _heading(self.d_lr), self.d_x)
        gone = moves & ((x < 0) | (x > 9))
        boarding = (self.d_alive & here) | (moves & ~gone & self._on_sub(x, self.d_y))
        # MinAtar visits divers last-spawned first and seats each while the count is below 6
        ahead = (boarding[:, None, :] & (self.d_born[:, None, :] > self.d_born[:, :, None])).sum(2)
        seated = boarding & (ahead < 6 - self.diver_count[:, None])
        self.diver_count = self.diver_count + seated.sum(1)
        self.d_x, self.d_move = x, torch.where(moves, DIVER_MOVE_INTERVAL, self.d_move - 1)
        self.d_alive = self.d_alive & ~gone & ~seated

    def _move_enemies(self) -> tuple[Tensor, Tensor]:
        """Subs and fish: ram the sub (before or after moving), leave the board, or move onto a friendly bullet
        and sink; subs fire on their interval. Returns the rewards and which copies were rammed."""
        alive = self.e_alive
        rammed = alive & self._on_sub(self.e_x, self.e_y)
        moves = alive & (self.e_move == 0)
        x = torch.where(moves, self.e_x + _heading(self.e_lr), self.e_x)
        gone = moves & ((x < 0) | (x > 9))
        rams = moves & ~gone & self._on_sub(x, self.e_y)
        claims = moves & ~gone & ~rams & at(self.f_right | self.f_left, x, self.e_y)
        # MinAtar's sub loop runs before its fish loop, each over its list last-spawned first: the first
        # enemy to reach a bullet spends it
        order = torch.where(self.e_sub, 0, LATER_LIST) - self.e_born
        sunk = first(x, self.e_y, claims, order)
        self._spend_bullets(x, self.e_y, sunk)
        # a sub fires even in the step it sinks or leaves (the loop body goes on); a shot from off the board
        # would leave at once, so dropping it is the same
        shoots = alive & self.e_sub & (self.e_shot == 0)
        self.b_right = self.b_right | paint(x, self.e_y, shoots & self.e_lr)
        self.b_left = self.b_left | paint(x, self.e_y, shoots & ~self.e_lr)
        self.e_shot = torch.where(shoots, ENEMY_SHOT_INTERVAL, self.e_shot - 1)
        self.e_x, self.e_move = x, torch.where(moves, self.move_speed[:, None], self.e_move - 1)
        self.e_alive = alive & ~gone & ~sunk
        return sunk.sum(1), (rammed | rams).any(1)

    def _move_enemy_bullets(self) -> Tensor:
        """Enemy bullets hit the sub on its cell before or after they move. Returns which copies were hit."""
        sub = spot(self.sub_x, self.sub_y)
        hit = ((self.b_right | self.b_left) & sub).flatten(1).any(1)
        self.b_right, self.b_left = shift(self.b_right, dx=1), shift(self.b_left, dx=-1)
        return hit | ((self.b_right | self.b_left) & sub).flatten(1).any(1)

    def _tick(self) -> tuple[Tensor, Tensor]:
        """Timers, oxygen and surfacing. Returns the surfacing bonus and which copies ended."""
        self.e_spawn_timer = (self.e_spawn_timer - 1).clamp(min=0)
        self.d_spawn_timer = (self.d_spawn_timer - 1).clamp(min=0)
        self.shot_timer = (self.shot_timer - 1).clamp(min=0)
        drowned = self.oxygen <= 0  # MinAtar tests it before this step uses oxygen
        below = self.sub_y > 0
        self.oxygen = torch.where(below, self.oxygen - 1, self.oxygen)
        arriving = ~below & ~self.surface
        empty = arriving & (self.diver_count == 0)
        bonus = self._surface(arriving & ~empty)
        self.surface = ~below & (self.surface | arriving & ~empty)
        return bonus, drowned | empty

    def _surface(self, up: Tensor) -> Tensor:
        """``Env._surface`` for the copies in ``up``: refill oxygen, drop a diver (six score the oxygen and
        all leave: MinAtar then still drops one, so the count goes to -1) and ramp the difficulty."""
        full = up & (self.diver_count == 6)
        bonus = torch.where(full, self.oxygen * 10 // MAX_OXYGEN, 0)
        count = torch.where(full, 0, self.diver_count) - 1
        self.diver_count = torch.where(up, count, self.diver_count)
        self.oxygen = torch.where(up, MAX_OXYGEN, self.oxygen)
        if self.ramping:
            ramp = up & ((self.e_spawn_speed > 1) | (self.move_speed > 2))
            faster = ramp & (self.move_speed > 2) & (self.ramp_index % 2 == 1)
            self.move_speed = self.move_speed - faster.long()
            self.e_spawn_speed = self.e_spawn_speed - (ramp & (self.e_spawn_speed > 1)).long()
            self.ramp_index = self.ramp_index + ramp.long()
        return bonus

    def _on_sub(self, x: Tensor, y: Tensor) -> Tensor:
        return (x == self.sub_x[:, None]) & (y == self.sub_y[:, None])

    def _spend_bullets(self, x: Tensor, y: Tensor, spent: Tensor) -> None:
        """Remove the friendly bullets on the cells of the ``spent`` enemy slots."""
        cells = paint(x, y, spent)
        self.f_right, self.f_left = self.f_right & ~cells, self.f_left & ~cells

    def _observe(self) -> Tensor:
        copies, columns = torch.arange(self.num_envs, device=self.device), torch.arange(10, device=self.device)
        # divers and enemies on their channels (fish 5, subs 6, divers 9) and their trails (3), in one scatter
        e_trail, d_trail = self.e_x - _heading(self.e_lr), self.d_x - _heading(self.d_lr)
        x = torch.cat([self.e_x, e_trail, self.d_x, d_trail], 1)
        y = torch.cat([self.e_y, self.e_y, self.d_y, self.d_y], 1)
        present = torch.cat([self.e_alive, self.e_alive, self.d_alive, self.d_alive], 1)
        channel = torch.cat([torch.where(self.e_sub, 6, 5), torch.full_like(self.e_x, 3),
                             torch.full_like(self.d_x, 9), torch.full_like(self.d_x, 3)], 1)
        obs = board(10, torch.where(present & (x >= 0) & (x <= 9), (y * 10 + x) * 10 + channel, 1000))
        obs[copies, self.sub_y, self.sub_x, 0] = True
        # the sub's back is on the board: the sub faces right at x = 9 and left at x = 0
        obs[copies, self.sub_y, self.sub_x + torch.where(self.sub_or, -1, 1), 1] = True
        obs[..., 2], obs[..., 4] = self.f_right | self.f_left, self.b_right | self.b_left
        obs[:, 9, :, 7] = columns < self.oxygen.clamp(min=0)[:, None] * 10 // MAX_OXYGEN
        obs[:, 9, :, 8] = (columns >= 9 - self.diver_count[:, None]) & (columns < 9)
        return obs


def _heading(lr: Tensor) -> Tensor:
    return torch.where(lr, 1, -1)


def _free_slot(alive: Tensor, add: Tensor) -> Tensor:
    """``[B, K]``: the first free slot of each copy in ``add`` (the capacity above guarantees one)."""
    free = ~alive
    return free & (free.cumsum(1) == 1) & add[:, None]


def _entity(kind: str, lr: Tensor, y: Tensor, move: Tensor, born: Tensor) -> dict[str, Tensor | bool]:
    """A new enemy's (``kind`` "e") or diver's ("d") fields: at the left edge heading right, or at the right
    edge heading left."""
    fields = {"alive": True, "lr": lr[:, None], "x": torch.where(lr, 0, 9)[:, None], "y": y[:, None],
              "move": move[:, None], "born": born[:, None]}
    return {f"{kind}_{name}": value for name, value in fields.items()}
