"""Generated finite tasks with exact ground truth: random MDPs and grid worlds, each fixed by its seed.

By default every reward lies in [0, 1] and is paid on a step that ends the episode, so Q* lies in [0, 1], the
range a bid can express (a grid world can also cost every step, as Taxi does). The generators retry
(deterministically) until the start state is worth something, so every task has a route to solve.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from societal.environments.mdp import value_iteration
from societal.environments.tabular import TabularEnv, integers

LEFT, DOWN, RIGHT, UP = range(4)  # FrozenLake's order
MOVES = {LEFT: (0, -1), DOWN: (1, 0), RIGHT: (0, 1), UP: (-1, 0)}


class RandomMDP(TabularEnv):
    """``states`` states, ``actions`` actions, episodes from state 0 truncated after ``horizon`` steps.

    Action a in state s moves to a main successor drawn once from s − 2 … s + 3 (the exits lie ahead)
    with probability 1 − ``noise``, else to one of two other states within 3 of s. ``exits`` (state,
    action) pairs in the upper half end the episode and pay a reward drawn from [0.2, 1]; one more
    ends it with nothing (a pit); ``traps`` states keep the agent forever with reward 0.
    """

    def __init__(self, states: int = 8, actions: int = 3, seed: int = 0, horizon: int = 50, exits: int = 3,
                 traps: int = 1, noise: float = 0.2, render_mode=None) -> None:
        integers(states=states, actions=actions, seed=seed, horizon=horizon, exits=exits, traps=traps)
        if states < 4 or actions < 2 or horizon < 1 or not 0 <= noise < 1 or exits < 1 or traps < 0:
            raise ValueError("need states >= 4, actions >= 2, horizon >= 1, 0 <= noise < 1, exits >= 1, traps >= 0; "
                             f"got states={states}, actions={actions}, horizon={horizon}, noise={noise}, "
                             f"exits={exits}, traps={traps}")
        if exits + 1 > (states - states // 2) * actions or traps > states - 2:
            raise ValueError(f"too many exits ({exits}) or traps ({traps}) for {states} states × {actions} actions")
        rng = np.random.default_rng(seed)
        for _ in range(1000):
            next_state, reward, terminal, prob = self._draw(rng, states, actions, exits, traps, noise)
            super().__init__(next_state, reward, terminal, 0, horizon, prob, render_mode)
            if value_iteration(self.mdp(), 0.99).max(1)[0] > 0.05:
                return
        raise ValueError(f"no random MDP with a valuable start state for seed {seed}")

    @staticmethod
    def _draw(rng: np.random.Generator, n: int, m: int, exits: int, traps: int, noise: float):
        s = np.arange(n)[:, None]
        main = np.clip(s + rng.integers(-2, 4, (n, m)), 0, n - 1)
        slips = np.clip(s[..., None] + rng.integers(-3, 4, (n, m, 2)), 0, n - 1)
        next_state = np.concatenate([main[..., None], slips], 2)
        prob = np.broadcast_to([1 - noise, noise / 2, noise / 2], (n, m, 3)).copy()
        reward, terminal = np.zeros((n, m, 3)), np.zeros((n, m, 3), bool)
        upper = [(i, a) for i in range(n // 2, n) for a in range(m)]
        chosen = rng.choice(len(upper), exits + 1, replace=False)
        for j, c in enumerate(chosen):
            i, a = upper[c]
            terminal[i, a] = True
            reward[i, a] = rng.uniform(0.2, 1.0) if j < exits else 0.0  # the last one is the pit
        exit_states = {upper[c][0] for c in chosen}
        for i in rng.permutation([i for i in range(1, n) if i not in exit_states])[:traps]:
            next_state[i], terminal[i], reward[i] = i, False, 0.0
        return next_state, reward, terminal, prob

    def __repr__(self) -> str:
        return f"RandomMDP({self.observation_space.n} states, {self.action_space.n} actions)"


class GridWorld(TabularEnv):
    """A ``rows`` × ``cols`` grid from the top-left corner to the goal in the bottom-right (reward 1, the
    episode ends); ``pits`` random cells end it with nothing. ``slip``: the probability of moving to
    either side of the intended direction instead (half each). ``cliff``: CliffWalking's layout instead
    of random pits (start bottom-left, goal bottom-right, the bottom row between them ends the episode
    with nothing). Walls keep the agent in place. Horizon ``horizon`` (default 4·(rows + cols)). Rewards: the
    goal pays ``goal_reward``, a pit ``pit_reward``, any other step ``step_reward`` (a cost where negative).
    """

    action_names = ("Left", "Down", "Right", "Up")

    def __init__(self, rows: int = 5, cols: int | None = None, pits: int = 3, slip: float = 0.0, seed: int = 0,
                 cliff: bool = False, horizon: int | None = None, step_reward: float = 0.0, goal_reward: float = 1.0,
                 pit_reward: float = 0.0, render_mode=None) -> None:
        cols = rows if cols is None else cols
        integers(rows=rows, cols=cols, pits=pits, seed=seed, **({} if horizon is None else {"horizon": horizon}))
        if rows < 2 or cols < 2 or pits < 0 or not 0 <= slip < 1:
            raise ValueError(f"need rows, cols >= 2, pits >= 0 and 0 <= slip < 1; got rows={rows}, cols={cols}, "
                             f"pits={pits}, slip={slip}")
        if pits > rows * cols - 2:
            raise ValueError(f"{pits} pits do not fit in a {rows}×{cols} grid")
        self.rows, self.cols = rows, cols
        start, goal = ((rows - 1, 0), (rows - 1, cols - 1)) if cliff else ((0, 0), (rows - 1, cols - 1))
        rng = np.random.default_rng(seed)
        for _ in range(1000):
            holes = {(rows - 1, c) for c in range(1, cols - 1)} if cliff else self._draw_pits(rng, pits, start, goal)
            if self._connected(start, goal, holes):
                break
        else:
            raise ValueError(f"no {rows}×{cols} grid with {pits} pits and a path to the goal for seed {seed}")
        self.pits = sorted(holes)
        index = lambda cell: cell[0] * cols + cell[1]  # noqa: E731
        n = rows * cols
        next_state, reward = np.zeros((n, 4, 3), np.int64), np.zeros((n, 4, 3))
        terminal = np.zeros((n, 4, 3), bool)
        for r in range(rows):
            for c in range(cols):
                for a in range(4):
                    for k, move in enumerate((a, (a - 1) % 4, (a + 1) % 4)):  # intended, then either side
                        cell = self._move((r, c), move)
                        next_state[index((r, c)), a, k] = index(cell)
                        terminal[index((r, c)), a, k] = cell == goal or cell in holes
                        reward[index((r, c)), a, k] = (goal_reward if cell == goal else
                                                       pit_reward if cell in holes else step_reward)
        prob = np.broadcast_to([1 - slip, slip / 2, slip / 2], (n, 4, 3))
        super().__init__(next_state, reward, terminal, index(start), horizon or 4 * (rows + cols), prob,
                         render_mode)

    def _move(self, cell: tuple[int, int], action: int) -> tuple[int, int]:
        dr, dc = MOVES[action]
        return min(max(cell[0] + dr, 0), self.rows - 1), min(max(cell[1] + dc, 0), self.cols - 1)

    def _draw_pits(self, rng: np.random.Generator, pits: int, start, goal) -> set[tuple[int, int]]:
        free = [(r, c) for r in range(self.rows) for c in range(self.cols) if (r, c) not in (start, goal)]
        return {free[i] for i in rng.choice(len(free), pits, replace=False)}

    def _connected(self, start, goal, holes) -> bool:
        seen, queue = {start}, deque([start])
        while queue:
            cell = queue.popleft()
            for a in MOVES:
                nxt = self._move(cell, a)
                if nxt not in seen and nxt not in holes:
                    seen.add(nxt)
                    queue.append(nxt)
        return goal in seen

    def render(self):
        grid = [["." for _ in range(self.cols)] for _ in range(self.rows)]
        for r, c in self.pits:
            grid[r][c] = "O"
        grid[self.rows - 1][self.cols - 1] = "G"
        r, c = divmod(self.state, self.cols)
        grid[r][c] = "A"
        return "\n".join("".join(row) for row in grid)
