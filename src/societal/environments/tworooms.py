"""The TwoRooms family (the paper's §7.2–7.3) on Farama's ``minigrid``.

A 9×5 grid: the left room (interior x 1..3) and the right room (interior x 5..7) share the wall
column x = 4, which holds a closed, unlocked red door at (4, 2). The right room holds two coloured
goal tiles, green at (7, 3) and blue at (7, 1). The agent starts at a uniform valid pose of its
start room and succeeds only by emitting ``done`` (action 6) in the right place:

- ``goal="red"``: the red door is open and the agent is strictly inside the right room (x ≥ 5);
- ``goal="green"`` / ``"blue"``: the agent stands on the tile of that colour.

Success gives ``1 - 0.9 * step_count / 50`` and ``terminated=True``; every other step gives 0.
MiniGrid's own limit (``max_steps=50``) sets ``truncated=True`` at step 50, never ``terminated``
(a success on step 50 itself reports both, as MiniGrid does for its ``Goal``).

Deviations from the original (a babyai fork), all deliberate:

- The observation is the 7×7×3 uint8 egocentric image itself (like ``ImgObsWrapper``, but inside
  the env); the fork's ``(room, obs)`` tuple becomes ``info["room"]``, next to ``info["success"]``.
- The original's timeout was commented out by hand; here it is a truncation, which says the same.
- The goal tiles are :class:`GoalTile`, a re-creation of the fork's ``GoalColor``: a ``'box'``-type
  object (so it encodes as ``(7, colour, 0)`` exactly like the original) that the agent can stand on,
  cannot pick up or toggle, and that, unlike MiniGrid's ``Goal``, does not end the episode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from minigrid.core.actions import Actions
from minigrid.core.constants import COLORS
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Door, WorldObj
from minigrid.minigrid_env import MiniGridEnv
from minigrid.utils.rendering import fill_coords, point_in_rect

DOOR_POS = (4, 2)
GOAL_POS = {"green": (7, 3), "blue": (7, 1)}
ROOM_TOP = {0: (1, 1), 1: (5, 1)}  # top-left interior cell of each 3×3 room
MAX_STEPS = 50  # 1 navigation × room_size² (25) × 2 rooms


class GoalTile(WorldObj):
    """A coloured, overlappable goal marker that does not terminate (the fork's ``GoalColor``)."""

    def __init__(self, color: str) -> None:
        super().__init__("box", color)

    def can_overlap(self) -> bool:
        return True

    def can_pickup(self) -> bool:
        return False

    def render(self, img: np.ndarray) -> None:
        fill_coords(img, point_in_rect(0, 1, 0, 1), COLORS[self.color])


def _mission() -> str:
    return ""


class TwoRooms(MiniGridEnv):
    """One TwoRooms task: ``start_room`` 0 (left) or 1 (right), ``goal`` "red", "green" or "blue"."""

    def __init__(self, start_room: int = 0, goal: str = "green", **kwargs: Any) -> None:
        if start_room not in ROOM_TOP or goal not in ("red", *GOAL_POS):
            raise ValueError(f"bad TwoRooms task: start_room={start_room!r}, goal={goal!r}")
        self.start_room, self.goal = start_room, goal
        super().__init__(MissionSpace(mission_func=_mission), width=9, height=5, max_steps=MAX_STEPS, **kwargs)
        self.observation_space = spaces.Box(0, 255, (self.agent_view_size, self.agent_view_size, 3), np.uint8)

    @property
    def door(self) -> Door:
        return self.grid.get(*DOOR_POS)

    def _gen_grid(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        self.grid.vert_wall(4, 0, height)
        self.put_obj(Door("red", is_open=False, is_locked=False), *DOOR_POS)
        for color, pos in GOAL_POS.items():
            self.put_obj(GoalTile(color), *pos)
        while True:  # uniform over (cell, dir) pairs whose front cell is empty or a wall
            self.place_agent(ROOM_TOP[self.start_room], (3, 3))
            front = self.grid.get(*self.front_pos)
            if front is None or front.type == "wall":
                break
        self.mission = _mission()

    def _success(self) -> bool:
        x, y = (int(v) for v in self.agent_pos)
        if self.goal == "red":
            return self.door.is_open and x >= 5
        return (x, y) == GOAL_POS[self.goal]

    def _info(self, success: bool) -> dict[str, Any]:
        return {"room": int(int(self.agent_pos[0]) >= 4), "success": success}  # door cell counts as room 1

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        obs, _ = super().reset(seed=seed, options=options)
        return obs["image"], self._info(False)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, _, _, truncated, _ = super().step(action)  # no Goal/Lava here, so MiniGrid never terminates
        success = int(action) == Actions.done and self._success()
        reward = self._reward() if success else 0.0
        return obs["image"], float(reward), success, truncated, self._info(success)
