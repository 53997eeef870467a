"""Mechanisms against hand-computed cases, and the credit-conservation identity as a property."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from societal.mechanisms import MECHANISMS, auction, utilities

# Three auctions of one episode, 3 bidders; the middle step is an option of duration 2.
BIDS = torch.tensor([[0.5, 0.7, 0.2], [0.6, 0.1, 0.3], [0.2, 0.4, 0.9]])[:, None]  # [T, B=1, N]
REWARD = torch.tensor([[0.0], [0.1], [1.0]])
DISCOUNT = torch.tensor([[0.9], [0.81], [0.9]])  # γ = 0.9, τ = 1, 2, 1
LAST = torch.tensor([[False], [False], [True]])
EXPECTED = {  # winner utilities, by hand from PAPER.md §1.8
    "v": [0 + 0.9 * 0.6 - 0.5, 0.1 + 0.81 * 0.9 - 0.3, 1.0 - 0.4],
    "ccv": [0 + 0.9 * 0.3 - 0.5, 0.1 + 0.81 * 0.4 - 0.3, 1.0 - 0.4],
    "bb": [0 + 0.9 * 0.6 - 0.7, 0.1 + 0.81 * 0.9 - 0.6, 1.0 - 0.9],
    "env": [0.0, 0.1, 1.0],
}


def run(mechanism, bids=BIDS, active=None, last=LAST, next_bids=None):
    active = torch.ones_like(bids, dtype=torch.bool) if active is None else active
    winner, first, second = auction(bids, active)
    nb = torch.zeros_like(bids[0]) if next_bids is None else next_bids
    _, nf, ns = auction(nb, torch.ones_like(nb, dtype=torch.bool))
    return winner, *utilities(mechanism, REWARD, DISCOUNT, first, second, last, nf, ns)


@pytest.mark.parametrize("mechanism", list(MECHANISMS))
def test_hand_computed(mechanism):
    winner, u, residual = run(mechanism)
    assert winner[:, 0].tolist() == [1, 0, 2]
    assert u[:, 0].tolist() == pytest.approx(EXPECTED[mechanism], abs=1e-6)
    assert residual[-1, 0] == 0  # nothing is sold after the last step


def test_residual_is_the_credit_vickrey_creates():
    _, _, residual = run("v")
    assert residual[:, 0].tolist() == pytest.approx([0.6 - 0.3, 0.9 - 0.4, 0.0], abs=1e-6)
    for m in ("ccv", "bb", "env"):
        assert run(m)[2].abs().max() == 0


def test_single_bidder_pays_nothing_in_vickrey():
    bids = torch.tensor([[0.4], [0.6], [0.3]])[:, None]
    _, first, second = auction(bids, torch.ones_like(bids, dtype=torch.bool))
    assert second.abs().max() == 0 and first[:, 0].tolist() == pytest.approx([0.4, 0.6, 0.3])


def test_inactive_bidders_neither_win_nor_set_the_price():
    active = torch.tensor([[True, False, True], [True, True, True], [True, True, False]])[:, None]
    winner, first, second = auction(BIDS, active)
    assert winner[:, 0].tolist() == [0, 0, 1]
    assert first[:, 0].tolist() == pytest.approx([0.5, 0.6, 0.4])
    assert second[:, 0].tolist() == pytest.approx([0.2, 0.3, 0.2])


def test_a_rollout_cut_is_bootstrapped_with_the_next_auction():
    last = torch.zeros_like(LAST)
    nxt = torch.tensor([[0.3, 0.8, 0.1]])
    _, u, _ = run("ccv", last=last, next_bids=nxt)
    assert u[-1, 0].item() == pytest.approx(1.0 + 0.9 * 0.3 - 0.4)
    _, u, _ = run("v", last=last, next_bids=nxt)
    assert u[-1, 0].item() == pytest.approx(1.0 + 0.9 * 0.8 - 0.4)


episodes = st.integers(1, 12).flatmap(lambda t: st.tuples(
    st.lists(st.lists(st.floats(0.001, 0.999), min_size=4, max_size=4), min_size=t, max_size=t),
    st.lists(st.floats(-1, 1), min_size=t, max_size=t),
    st.lists(st.integers(1, 5), min_size=t, max_size=t),
    st.floats(0.5, 1.0),
))


@settings(deadline=None, max_examples=200)
@given(episodes)
def test_credit_conservation(episode):
    """Σ_t γ^{start_t} U_t = Σ_t γ^{start_t} r_t − p_0 for ccv and bb; Vickrey creates credit (≥)."""
    bids, reward, duration, gamma = episode
    bids = torch.tensor(bids, dtype=torch.float64)[:, None]
    reward = torch.tensor(reward, dtype=torch.float64)[:, None]
    duration = torch.tensor(duration, dtype=torch.float64)[:, None]
    last = torch.zeros_like(reward, dtype=torch.bool)
    last[-1] = True
    start = torch.cumsum(duration, 0) - duration
    weight = gamma**start
    _, first, second = auction(bids, torch.ones_like(bids, dtype=torch.bool))
    zero = torch.zeros(1, dtype=torch.float64)
    for mechanism, price in (("ccv", second), ("bb", first), ("v", second), ("env", torch.zeros_like(first))):
        u, residual = utilities(mechanism, reward, gamma**duration, first, second, last, zero, zero)
        lhs, rhs = (weight * u).sum().item(), (weight * reward).sum().item() - price[0, 0].item()
        created = (weight[:-1] * gamma ** duration[:-1] * residual[:-1]).sum().item()
        assert lhs == pytest.approx(rhs + created, abs=1e-9)
        if mechanism == "v":
            assert created >= 0
        else:
            assert created == 0
