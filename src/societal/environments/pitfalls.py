"""Generated finite tasks of the kinds that break a market: a binding deadline and a lure. Each is fixed by its seed
and has exact ground truth (a table); costs per step are GridWorld's ``step_reward``.

- ``Deadline``: routes of different lengths from the start; the one worth most without a time limit cannot
  finish within it, so a market that prices states as if there were no limit picks a route that pays nothing.
- ``Lure``: a small reward next to the start leads into a region that never ends the episode; the long way
  pays 1. Whoever spends its exploration in the lure's region never learns the long way's worth.
"""

from __future__ import annotations

import numpy as np

from societal.environments.tabular import TabularEnv, integers


def _corridor(rng: np.random.Generator, length: int, actions: int):
    """The states of a corridor of ``length`` steps: the action that goes on in each, drawn; any other stays."""
    return rng.integers(0, actions, length)


class Deadline(TabularEnv):
    """From the start, action k enters route k (more actions than routes: the others stay). A route of length L
    takes L steps to its end, paying its reward there; in each of its states one action, drawn, goes on and
    the others stay. Route 0 pays 1 and is 2–8 steps longer than the horizon allows; route 1 fits the horizon
    and pays less, but more than route 0 within the limit (nothing), and its γ^L-discounted value is below route
    0's without the limit (γ = 0.99); a third route, where there is one, fits and pays less again."""

    def __init__(self, seed: int = 0, render_mode=None) -> None:
        integers(seed=seed)
        rng = np.random.default_rng(seed)
        actions, routes, horizon = int(rng.integers(2, 5)), int(rng.integers(2, 4)), int(rng.integers(12, 31))
        routes = min(routes, actions)
        long = horizon + int(rng.integers(2, 9))
        short = int(rng.integers(horizon // 2, horizon + 1))
        reward = [1.0, float(rng.uniform(0.3, 0.8) * 0.99 ** (long - short))]  # below route 0 without a limit
        lengths = [long, short]
        if routes == 3:
            lengths.append(int(rng.integers(3, horizon + 1)))
            reward.append(reward[1] * 0.99 ** (short - lengths[2]) * float(rng.uniform(0.5, 0.9)))
        first = np.cumsum([1, *(length - 1 for length in lengths)])  # route k's first state
        n = int(first[-1])
        next_state, pay = np.tile(np.arange(n)[:, None], (1, actions)), np.zeros((n, actions))
        terminal = np.zeros((n, actions), bool)
        for k, length in enumerate(lengths):
            next_state[0, k] = first[k]
            for i, go in enumerate(_corridor(rng, length - 1, actions)):
                s = first[k] + i
                if i == length - 2:  # the route's last state: going on ends the episode and pays
                    terminal[s, go], pay[s, go] = True, reward[k]
                else:
                    next_state[s, go] = s + 1
        self.lengths, self.rewards = lengths, reward
        super().__init__(next_state, pay, terminal, 0, horizon, render_mode=render_mode)

    def __repr__(self) -> str:
        paying = [round(r, 3) for r in self.rewards]
        return f"Deadline(routes {self.lengths} steps paying {paying}, horizon {self.horizon})"


class Lure(TabularEnv):
    """A corridor of ``length`` states from the start to a reward of 1 (in each, one action, drawn, goes on; one
    other, drawn, takes the lure; the rest stay). Taking the lure pays ``lure`` and enters a region of ``region``
    states where every action leads to a random one of them and the episode never ends; the lure's value,
    ``lure``, is below the long way's γ^length (γ = 0.99). Length 8–16, 3–4 actions, horizon 100."""

    def __init__(self, seed: int = 0, lure: float = 0.3, region: int = 6, render_mode=None) -> None:
        integers(seed=seed, region=region)
        if not 0 < lure < 1 or region < 1:
            raise ValueError(f"need 0 < lure < 1 and region >= 1; got lure={lure}, region={region}")
        rng = np.random.default_rng(seed)
        length, actions = int(rng.integers(8, 17)), int(rng.integers(3, 5))
        n = length + region
        next_state, pay = np.tile(np.arange(n)[:, None], (1, actions)), np.zeros((n, actions))
        terminal = np.zeros((n, actions), bool)
        for s, go in enumerate(_corridor(rng, length, actions)):
            lured = int(rng.choice([a for a in range(actions) if a != go]))
            next_state[s, lured], pay[s, lured] = length + int(rng.integers(region)), lure
            if s == length - 1:
                terminal[s, go], pay[s, go] = True, 1.0
            else:
                next_state[s, go] = s + 1
        next_state[length:] = length + rng.integers(0, region, (region, actions))
        self.length = length
        super().__init__(next_state, pay, terminal, 0, 100, render_mode=render_mode)

    def __repr__(self) -> str:
        return f"Lure(corridor of {self.length} states, {self.action_space.n} actions)"
