"""Every bidder's bid in every state, logged at each evaluation (societies on one-hot observations)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from societal.society import Society


class BidLog:
    """The training auctions held in each state so far (``visits``), and the rows of ``bids.csv``."""

    def __init__(self, num_states: int, names: tuple[str, ...], q_star: np.ndarray | None,
                 device: torch.device) -> None:
        self.names, self.q_star = names, q_star
        self.visits = torch.zeros(num_states, device=device)

    def visit(self, obs: Tensor) -> None:
        """Count the auctions held at ``obs``: one-hot ``[B, S]`` or state indices ``[B, 1]``."""
        self.visits += obs.sum(0) if obs.is_floating_point() else torch.bincount(obs[:, 0], minlength=len(self.visits))

    @torch.no_grad()
    def rows(self, society: Society, update: int, env_steps: int, wins: Tensor) -> list[dict]:
        """Mean and std of every learner's Beta bid in every state, with the training auctions held there so far
        (0: its bids were never trained), Q* and the evaluation's win rates."""
        alpha, beta = society.distribution(torch.eye(len(self.visits), device=self.visits.device))
        total = alpha + beta
        mean, std = alpha / total, (alpha * beta / (total**2 * (total + 1))).sqrt()
        win_rate = wins / wins.sum(1, keepdim=True).clamp(min=1)
        rows = []
        for s, count in enumerate(self.visits.tolist()):
            for k in range(society.num_learners):
                p = k % society.num_primitives
                rows.append({"update": update, "env_steps": env_steps, "state": s, "visits": int(count), "learner": k,
                             "primitive": p, "action": self.names[p], "mean_bid": mean[k, s].item(),
                             "std_bid": std[k, s].item(), "win_rate": win_rate[s, p].item(),
                             "q_star": "" if self.q_star is None else float(self.q_star[s, p])})
        return rows
