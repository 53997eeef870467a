"""Finite MDPs and their optimal Q-function, the bids a society should converge to."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass
class FiniteMDP:
    """``transition[s, a, s']``: probability of going on to s' (mass that ends the episode is left out);
    ``reward[s, a]``: expected reward; ``start[s]``: where episodes start; ``horizon``: the time limit (None: none);
    ``reward_bounds``: the lowest and the highest reward a step can pay."""

    transition: np.ndarray
    reward: np.ndarray
    start: np.ndarray
    horizon: int | None = None
    reward_bounds: tuple[float, float] = (0.0, 0.0)

    def scaled(self, scale: float, shift: float, end: float = 0.0) -> FiniteMDP:
        """The same task with every reward r paid as scale · r + shift, and ``end`` more by a step that ends the
        episode."""
        ending = 1 - self.transition.sum(-1)
        low, high = sorted((scale * self.reward_bounds[0] + shift, scale * self.reward_bounds[1] + shift))
        return replace(self, reward=scale * self.reward + shift + end * ending,
                       reward_bounds=(min(low, low + end), max(high, high + end)))


def value_iteration(mdp: FiniteMDP, gamma: float, tol: float = 1e-10, max_iter: int = 1_000_000) -> np.ndarray:
    """Q*[s, a] = r(s, a) + γ Σ_s' p(s' | s, a) max_a' Q*[s', a'] (ignoring time limits)."""
    q = np.zeros_like(mdp.reward, dtype=np.float64)
    for _ in range(max_iter):
        new = mdp.reward + gamma * mdp.transition @ q.max(axis=1)
        if np.abs(new - q).max() < tol:
            return new
        q = new
    return q


def bid_range_warnings(mdp: FiniteMDP, q: np.ndarray) -> list[str]:
    """What keeps bids in [0, 1] from expressing Q* (``q``, of the rewards the market is paid), one line each."""
    lines = []
    low, high = mdp.reward_bounds
    if low < 0 or high > 1:
        lines.append(f"rewards range over [{low:.3g}, {high:.3g}], outside [0, 1]; bids lie in [0, 1], so map them "
                     "with reward_scale / reward_shift (--reward-scale / --reward-shift) such that Q* lies in [0, 1]")
    value = q.max(1)  # what a state sells for; a losing action may be worth less than 0 and simply bid ≈ 0
    if value.min() < -1e-9 or q.max() > 1 + 1e-9:
        lines.append(f"Q* ranges over [{min(value.min(), 0):.3g}, {q.max():.3g}] (best actions), outside the bids' "
                     "range [0, 1]: bids cannot reach it (rescale the rewards)")
    if never_finishes(mdp, q):
        lines.append("the best policy never ends an episode: the reward paid on the way is worth more than finishing "
                     "(reward_shift is paid at every step, so a positive one can reward never finishing)")
    return lines


def never_finishes(mdp: FiniteMDP, q: np.ndarray) -> bool:
    """The greedy policy of ``q`` almost never ends an episode, though some policy can."""
    best = np.eye(q.shape[1])[q.argmax(1)]
    going_on = np.einsum("sa,sat->st", best, mdp.transition)
    here = mdp.start.copy()
    for _ in range(mdp.horizon or 10 * len(q)):
        here = here @ going_on
    can_end = (mdp.transition.sum(2) < 1 - 1e-9).any()
    return bool(can_end and here.sum() > 0.999 and q.max(1) @ mdp.start > 1e-9)
