"""Finite MDPs and their optimal Q-function, the bids a society should converge to."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass
class FiniteMDP:
    """``transition[s, a, s']``: probability of going on to s' (mass that ends the episode is left out);
    ``reward[s, a]``: expected reward; ``start[s]``: where episodes start; ``horizon``: the time limit (None: none);
    ``reward_bounds``: the lowest and the highest reward a step can pay; ``tail``: what an episode is still worth
    where the time limit cuts it (an absorbing shift's b/(1 − γ), else 0)."""

    transition: np.ndarray
    reward: np.ndarray
    start: np.ndarray
    horizon: int | None = None
    reward_bounds: tuple[float, float] = (0.0, 0.0)
    tail: float = 0.0

    def scaled(self, scale: float, shift: float, end: float = 0.0, tail: float = 0.0) -> FiniteMDP:
        """The same task with every reward r paid as scale · r + shift, ``end`` more by a step that ends the
        episode, and ``tail`` the value of an episode the time limit cuts."""
        ending = 1 - self.transition.sum(-1)
        low, high = sorted((scale * self.reward_bounds[0] + shift, scale * self.reward_bounds[1] + shift))
        return replace(self, reward=scale * self.reward + shift + end * ending,
                       reward_bounds=(min(low, low + end), max(high, high + end)), tail=tail)


def value_iteration(mdp: FiniteMDP, gamma: float, tol: float = 1e-10, max_iter: int = 1_000_000) -> np.ndarray:
    """Q*[s, a] = r(s, a) + γ Σ_s' p(s' | s, a) max_a' Q*[s', a'] (ignoring time limits)."""
    q = np.zeros_like(mdp.reward, dtype=np.float64)
    for _ in range(max_iter):
        new = mdp.reward + gamma * mdp.transition @ q.max(axis=1)
        if np.abs(new - q).max() < tol:
            return new
        q = new
    return q


def q_by_steps_left(mdp: FiniteMDP, gamma: float) -> list[np.ndarray]:
    """``[Q*_0, …, Q*_H]`` within the time limit H: Q*_h is the value with h steps left, Q*_0 the value of an
    episode the limit cuts (``tail``), Q*_{h+1} = r + γ P max_a Q*_h."""
    by_steps_left = [np.full(mdp.reward.shape, mdp.tail)]
    for _ in range(mdp.horizon):
        by_steps_left.append(mdp.reward + gamma * mdp.transition @ by_steps_left[-1].max(1))
    return by_steps_left


def task_q(mdp: FiniteMDP, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """``(q [S, A], on_path [S])``: the Q* a market without a clock can price, and the states the optimal policy
    visits. Without a time limit, Q* and the states its greedy policy visits. Within a limit H, the optimal
    policy may use the time left: Q*_h, the value with h steps left, comes from backward induction
    (Q*_1 = r, Q*_{h+1} = r + γ P max_a Q*_h), and the optimal policy acts on Q*_{H−t} at step t. A bid that
    cannot see the clock learns the average over its visits, so a visited state's Q is

        Q(s, a) = Σ_t d_t(s) Q*_{H−t}(s, a) / Σ_t d_t(s),

    d_t the optimal policy's state distribution at step t; a state it never visits gets Q*_H (all the time left).
    """
    if mdp.horizon is None:
        q = value_iteration(mdp, gamma)
        return q, visited_by(mdp, np.eye(q.shape[1])[q.argmax(1)])
    by_steps_left = q_by_steps_left(mdp, gamma)
    here, visits, weighted = mdp.start.astype(np.float64), np.zeros(len(mdp.reward)), np.zeros_like(mdp.reward)
    for q_t in by_steps_left[:0:-1]:  # Q*_H at step 0, …, Q*_1 at step H − 1
        visits, weighted = visits + here, weighted + here[:, None] * q_t
        here = here @ np.einsum("sa,sat->st", np.eye(q_t.shape[1])[q_t.argmax(1)], mdp.transition)
    on_path = visits > 1e-12
    return np.where(on_path[:, None], weighted / np.maximum(visits, 1e-300)[:, None], by_steps_left[-1]), on_path


def visited_by(mdp: FiniteMDP, pi: np.ndarray) -> np.ndarray:
    """``[S]`` bool: the states the policy ``pi [S, A]`` visits with positive probability within the time limit."""
    going_on = np.einsum("sa,sat->st", pi, mdp.transition)
    here, seen = mdp.start.copy(), mdp.start > 0
    for _ in range(mdp.horizon or len(pi)):
        here = here @ going_on
        seen |= here > 1e-12
    return seen


def bid_range_warnings(mdp: FiniteMDP, q: np.ndarray, rewards: bool = True) -> list[str]:
    """What keeps bids in [0, 1] from expressing Q* (``q``, of the rewards the market is paid), one line each;
    ``rewards``: also where a step's reward leaves [0, 1] (a hint for a map chosen by hand)."""
    lines = []
    low, high = mdp.reward_bounds
    if rewards and (low < 0 or high > 1):
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
