"""Mechanisms against hand-computed cases, and the credit-conservation identity as a property."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from societal.learning.rollout import draw_exploring
from societal.mechanisms import MECHANISMS, auction, settle, utilities

# Three auctions of one episode, 3 bidders; the middle step is an option of duration 2.
BIDS = torch.tensor([[0.5, 0.7, 0.2], [0.6, 0.1, 0.3], [0.2, 0.4, 0.9]])[:, None]  # [T, B=1, N]
REWARD = torch.tensor([[0.0], [0.1], [1.0]])
DISCOUNT = torch.tensor([[0.9], [0.81], [0.9]])  # γ = 0.9, τ = 1, 2, 1
LAST = torch.tensor([[False], [False], [True]])
EXPECTED = {  # winner utilities, by hand from the formulas in societal.mechanisms
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


def test_mean_prices_settle_at_the_winners_mean_and_the_best_other_mean():
    means = torch.tensor([[0.3, 0.5, 0.2, 0.3], [0.6, 0.6, 0.1, 0.1]])
    active = torch.tensor([[True, True, True, True], [True, True, True, False]])
    first, second = settle(means, torch.tensor([2, 1]), active)
    assert first.tolist() == pytest.approx([0.2, 0.6]) and second.tolist() == pytest.approx([0.5, 0.6])
    # a cloned primitive's two bidders share one mean: the winning clone pays exactly that mean
    alone = settle(means[:1], torch.tensor([1]), torch.tensor([[False, True, False, False]]))
    assert alone[1].item() == 0.0  # no other active bidder: no price


def test_what_a_seller_gets_after_an_exploratory_auction_is_the_full_auctions_price():
    first, second = torch.tensor([[0.7], [0.4]]), torch.tensor([[0.6], [0.35]])  # as held (step 1 explored)
    market = torch.tensor([[0.7], [0.9]]), torch.tensor([[0.6], [0.8]])  # the full auctions
    reward, discount = torch.tensor([[0.0], [1.0]]), torch.full((2, 1), 0.9)
    last = torch.tensor([[False], [True]])
    zero = torch.zeros(1)
    u, residual = utilities("ccv", reward, discount, first, second, last, zero, zero, market)
    assert u[:, 0].tolist() == pytest.approx([0.9 * 0.8 - 0.6, 1.0 - 0.35])  # sold at 0.8, the explorer paid 0.35
    assert residual[0, 0].item() == pytest.approx(0.8 - 0.35)  # credit the exploratory auction created
    u_plain, _ = utilities("ccv", reward, discount, first, second, last, zero, zero)
    assert u_plain[0, 0].item() == pytest.approx(0.9 * 0.35 - 0.6)


def test_exploratory_auctions_hold_one_random_primitives_bidders():
    primitive_of = torch.arange(6) % 3  # 3 primitives × 2 clones
    active = torch.ones(4000, 6, dtype=torch.bool)
    active[:, 0] = False  # dropout: bidder 0 sits out
    taking_part, exploring = draw_exploring(active, primitive_of, 0.25)
    assert exploring.float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert torch.equal(taking_part[~exploring], active[~exploring])
    held = taking_part[exploring]
    assert not held[:, 0].any()  # who sat out stays out
    assert all(len(set(primitive_of[row].tolist())) == 1 for row in held)  # one primitive's bidders each
    # every primitive is explored, in proportion to its active bidders (1, 2 and 2 of 5)
    share = torch.bincount(primitive_of[held.float().argmax(1)], minlength=3).float() / len(held)
    assert share.tolist() == pytest.approx([0.2, 0.4, 0.4], abs=0.05)
    assert torch.equal(draw_exploring(active, primitive_of, 0.0)[0], active)


def test_the_configs_names_are_the_registries():
    from societal import config, networks

    assert tuple(MECHANISMS) == config.MECHANISMS
    assert config.NETWORKS == networks.NETWORKS
