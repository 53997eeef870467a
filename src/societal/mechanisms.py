"""Auction mechanisms: how bids and rewards become each bidder's utility (the paper's V, CCV, BB and env).

The winner of auction t buys the state s_t and, after its transformation, sells s_{t+1} to the
winner of auction t+1. A mechanism says, for one auction, what the seller receives and what the
buyer pays, given the highest bid ``first`` (the winner's) and the highest bid of the other active
bidders ``second`` (0 when the winner bids alone):

    ======  ==========================  ==============  ==============
    name    mechanism                   seller gets     buyer pays
    ======  ==========================  ==============  ==============
    v       Vickrey                     first           second
    ccv     credit-conserving Vickrey   second          second
    bb      bucket brigade              first           first
    env     environment reward          0               0
    ======  ==========================  ==============  ==============

so the winner of auction t earns (losers earn 0)

    U_t = r_t + γ^{τ_t} · sold_{t+1} − paid_t,

with r_t the reward of its transformation (discounted inside an option), τ_t its duration and
sold_{t+1} = 0 after the last step of an episode. Credit is conserved when what a seller gets
equals what the next buyer pays: then Σ_t γ^{start_t} U_t = Σ_t γ^{start_t} r_t − paid_0.
Vickrey creates ``first − second ≥ 0`` at every later step, which ``conservation_residual`` reports.

Beyond the paper, the prices can be *mean prices*: the winner is still the highest sampled bid, but
``first`` and ``second`` are the winner's mean bid and the highest mean bid of the other active bidders
(``settle``). In a cloned society the winning primitive's clone then sets the price at exactly its
mean, instead of the lower of two draws, which sits ≈ 0.56 σ below it: sampled prices deflate by that
much at every auction, so bids fall further below Q* the further a state lies from the reward.
And an *exploratory* auction is held among a few bidders only; what the seller of its state gets is
then the price of the full auction (``market``), so exploring does not lower the price of a state.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Mechanism = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def vickrey(first: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
    """V: the buyer pays the second price; the seller gets the next winner's bid."""
    return first, second


def credit_conserving_vickrey(first: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
    """CCV: the buyer pays the second price and the seller gets exactly that."""
    return second, second


def bucket_brigade(first: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
    """BB (Holland 1985): the buyer pays its own bid to the seller."""
    return first, first


def environment_reward(first: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
    """env: no market; the winner keeps the environment reward."""
    zero = torch.zeros_like(first)
    return zero, zero


MECHANISMS: dict[str, Mechanism] = {
    "v": vickrey,
    "ccv": credit_conserving_vickrey,
    "bb": bucket_brigade,
    "env": environment_reward,
}


def auction(bids: Tensor, active: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Run the auctions ``bids[..., N]``: winner index, highest and second-highest active bid.

    Inactive bidders (agent dropout) cannot win and do not set the price; with a single active
    bidder the second-highest bid is 0.
    """
    masked = bids.masked_fill(~active, -1.0)  # bids lie in (0, 1)
    if bids.shape[-1] == 1:
        return torch.zeros_like(bids[..., 0], dtype=torch.long), masked[..., 0], torch.zeros_like(bids[..., 0])
    top = masked.topk(2, dim=-1)
    return top.indices[..., 0], top.values[..., 0], top.values[..., 1].clamp(min=0.0)


def settle(values: Tensor, winner: Tensor, active: Tensor) -> tuple[Tensor, Tensor]:
    """``(first, second)`` from per-bidder ``values [..., N]`` (e.g. mean bids): the winner's value and the
    highest value of the other active bidders (0 when the winner bids alone)."""
    first = values.gather(-1, winner[..., None])[..., 0]
    others = active.clone()
    others.scatter_(-1, winner[..., None], False)
    return first, values.masked_fill(~others, 0.0).amax(-1)


def prices(mechanism: str, first: Tensor, second: Tensor, last: Tensor, next_first: Tensor,
           next_second: Tensor, market: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(paid, sold_next, paid_next)``, each ``[T, B]``: what the winner of auction t pays for s_t,
    what it gets for s_{t+1}, and what the next winner pays for s_{t+1} (both 0 after an episode's last step).
    ``market``: ``(first, second)`` of the full auctions, where some were exploratory (what sellers get);
    other arguments as in ``utilities``."""
    rule = MECHANISMS[mechanism]
    paid = rule(first, second)[1]
    sold = rule(*(market or (first, second)))[0]
    next_sold, next_paid = rule(next_first, next_second)
    sold_next = torch.cat([sold[1:], next_sold[None]]).masked_fill(last, 0.0)
    paid_next = torch.cat([paid[1:], next_paid[None]]).masked_fill(last, 0.0)
    return paid, sold_next, paid_next


def utilities(
    mechanism: str,
    reward: Tensor,
    discount: Tensor,
    first: Tensor,
    second: Tensor,
    last: Tensor,
    next_first: Tensor,
    next_second: Tensor,
    market: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Winner utilities of a batch of auction sequences, and the credit-conservation residual.

    ``reward``, ``discount`` (γ^τ), ``first``, ``second`` and ``last`` (step t ends its episode)
    are ``[T, B]``; ``next_first`` and ``next_second`` ``[B]`` are the auction after step T-1,
    used where that step does not end its episode (a rollout cut, not an episode end); ``market`` as in
    ``prices``. Returns ``U [T, B]`` (the winner's utility) and ``residual [T, B]`` = what the seller of
    s_{t+1} got minus what its buyer paid (0 after the last step).
    """
    paid, sold_next, paid_next = prices(mechanism, first, second, last, next_first, next_second, market)
    return reward + discount * sold_next - paid, sold_next - paid_next
