"""TwoRooms (:mod:`societal.environments.tworooms`) vectorised natively in torch: many copies per step.

Why it is exact: a TwoRooms state is only the agent's pose, the door flag and the step count (nothing can
be carried, nothing else moves), so there are 9·5·4·2 = 360 states. ``_tables`` asks the real MiniGrid
env, placed in every state, for its observation (``gen_obs``) and for the result of every action
(``step``), and asks ``_reward`` for every step count. ``step`` then only looks these tables up, so
observations, rewards, termination and truncation are MiniGrid's own, bit for bit. Start poses are drawn
uniformly from the valid poses that ``TwoRooms._gen_grid``'s rejection sampling accepts (its exact
distribution), with a torch generator instead of MiniGrid's random stream.
"""

from __future__ import annotations

import functools
import itertools

import torch
from minigrid.core.constants import DIR_TO_VEC
from torch import Tensor

from societal.environments.state import SavedState
from societal.environments.tworooms import ROOM_TOP, TwoRooms

WIDTH, HEIGHT, DIRS, NUM_ACTIONS = 9, 5, 4, 7


def state_index(x: int, y: int, d: int, door_open: int) -> int:
    """The flat index of a state: ``((x·5 + y)·4 + dir)·2 + door_open``."""
    return ((x * HEIGHT + y) * DIRS + d) * 2 + door_open


def _place(env: TwoRooms, pos: tuple[int, int], d: int, door_open: int) -> None:
    env.agent_pos, env.agent_dir, env.door.is_open, env.step_count, env.carrying = pos, d, bool(door_open), 0, None


@functools.cache
def _tables(cls: type, start_room: int, goal: str, view: int, see_through_walls: bool) -> tuple[Tensor, ...]:
    """Observations [S, v, v, 3] uint8, next states [S·A], successes [S·A], rewards by step count, start states."""
    env = cls(start_room, goal, agent_view_size=view, see_through_walls=see_through_walls)
    env.reset(seed=0)
    n = WIDTH * HEIGHT * DIRS * 2
    obs = torch.zeros(n, *env.observation_space.shape, dtype=torch.uint8)
    nxt, success = torch.arange(n).repeat_interleave(NUM_ACTIONS), torch.zeros(n * NUM_ACTIONS, dtype=torch.bool)
    gen_obs = env.gen_obs  # it has no side effects: skipped while stepping, where only the next state matters
    env.gen_obs = lambda: {"image": None}
    for x, y, d, door in itertools.product(range(1, WIDTH - 1), range(1, HEIGHT - 1), range(DIRS), (0, 1)):
        s = state_index(x, y, d, door)  # the interior only: nothing else is reachable (left as zeros/loops)
        _place(env, (x, y), d, door)
        obs[s] = torch.from_numpy(gen_obs()["image"])
        for a in range(NUM_ACTIONS):
            _place(env, (x, y), d, door)
            success[s * NUM_ACTIONS + a] = env.step(a)[2]
            nxt[s * NUM_ACTIONS + a] = state_index(*env.agent_pos, env.agent_dir, env.door.is_open)
    rewards = []
    for t in range(env.max_steps + 1):
        env.step_count = t
        rewards.append(float(env._reward()))
    starts = []  # as TwoRooms._gen_grid: an empty cell of the start room whose front is empty or a wall
    left, top = ROOM_TOP[start_room]
    for x, y, d in itertools.product(range(left, left + 3), range(top, top + 3), range(DIRS)):
        front = env.grid.get(x + int(DIR_TO_VEC[d][0]), y + int(DIR_TO_VEC[d][1]))
        if env.grid.get(x, y) is None and (front is None or front.type == "wall"):
            starts.append(state_index(x, y, d, 0))
    return obs, nxt, success, torch.tensor(rewards, dtype=torch.float32), torch.tensor(starts)


class TwoRoomsVecEnv(SavedState):
    """``num_envs`` copies of one TwoRooms task stepped together in torch, reset in the same step."""

    discrete, codes, indexed = False, None, False
    STATE = ("state", "t")

    def __init__(self, env: TwoRooms, num_envs: int, device: torch.device | str = "cpu") -> None:
        self.num_envs, self.device = num_envs, torch.device(device)
        key = (type(env), env.start_room, env.goal, env.agent_view_size, env.see_through_walls)
        tables = [t.to(self.device) for t in _tables(*key)]
        obs, self.next_state, self.success, self.reward_table, self.starts = tables
        self.obs_table, self.max_steps = obs.float(), len(self.reward_table) - 1
        self.generator = torch.Generator(self.device)
        self.generator.seed()
        self.state = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.t = torch.zeros(num_envs, dtype=torch.long, device=self.device)

    def _draw_starts(self) -> Tensor:
        pick = torch.randint(len(self.starts), (self.num_envs,), generator=self.generator, device=self.device)
        return self.starts[pick]

    def poses(self) -> Tensor:
        """``[B, 4]``: each copy's ``(x, y, dir, door_open)``."""
        s = self.state
        return torch.stack([s // (HEIGHT * DIRS * 2), s // (DIRS * 2) % HEIGHT, s // 2 % DIRS, s % 2], dim=1)

    def reset(self, seed: int | None = None) -> Tensor:
        if seed is not None:
            self.generator.manual_seed(seed)
        self.state, self.t = self._draw_starts(), torch.zeros_like(self.t)
        return self.obs_table[self.state]

    def step(self, action: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        sa = self.state * NUM_ACTIONS + action.to(self.device, torch.long)
        final, terminated = self.next_state.take(sa), self.success.take(sa)
        if mask is not None:  # copies left out stay where they are
            final, terminated = torch.where(mask, final, self.state), terminated & mask
        self.t += 1 if mask is None else mask.long()
        truncated = self.t >= self.max_steps  # MiniGrid's limit, also on a success at the last step
        reward = torch.where(terminated, self.reward_table[self.t], 0.0)
        done = terminated | truncated
        self.state = torch.where(done, self._draw_starts(), final)
        self.t.masked_fill_(done, 0)
        return self.obs_table[self.state], reward, terminated, truncated, self.obs_table[final]
