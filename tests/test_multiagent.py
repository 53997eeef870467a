"""The auction as a PettingZoo environment: the API, the native trainer's utilities, an outside learner."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from pettingzoo.test import parallel_api_test

from societal.environments.vector import make_vec
from societal.learning.rollout import Collector
from societal.mechanisms import MECHANISMS
from societal.multiagent import AuctionEnv
from societal.primitives import LiteralActions
from societal.society import Society


@pytest.mark.parametrize("env_id,dropout", [("societal/Chain-v0", False), ("societal/Bandit-v0", True),
                                            ("FrozenLake-v1", False)])
def test_the_auction_passes_the_pettingzoo_parallel_api_test(env_id, dropout):
    parallel_api_test(AuctionEnv(env_id, dropout=dropout), num_cycles=300)


def test_dropout_leaves_at_least_two_bidders_out_of_the_whole_episode():
    env = AuctionEnv("societal/Bandit-v0", arms=6, dropout=True)
    sizes = {len(env.reset(seed=s)[0]) for s in range(200)}
    assert min(sizes) == 2 and max(sizes) == 12


@pytest.mark.parametrize("mechanism", list(MECHANISMS))
def test_rewards_are_the_native_rollouts_utilities_one_step_later(mechanism):
    torch.manual_seed(0)
    steps = 30
    native = Collector(Society((6,), 2), LiteralActions(2), make_vec("societal/Chain-v0", {}, 1, torch.device("cpu")),
                       mechanism, 0.99, False)
    bids = torch.rand(steps + 1, 1, 4)
    calls = iter(bids)
    native.bid_and_mean = lambda obs: (b := next(calls), b)  # the same bids in both
    rollout = native.collect(steps)
    end = int(rollout.last[:, 0].nonzero()[0])  # the first episode's last step
    expected = torch.zeros(end + 1, 4)
    expected[1:] = rollout.utility[:end, 0]  # the winner of step t is paid at step t + 1 ...
    expected[end] += rollout.utility[end, 0]  # ... or at once where the episode ends

    env = AuctionEnv("societal/Chain-v0", mechanism=mechanism)
    env.reset(seed=0)
    delivered = []
    for t in range(end + 1):
        _, rewards, terminations, truncations, infos = env.step(
            {a: bids[t, 0, i : i + 1].numpy() for i, a in enumerate(env.possible_agents)})
        delivered.append([rewards[a] for a in env.possible_agents])
        assert infos[env.possible_agents[int(rollout.winner[t, 0])]]["won"]
    assert not env.agents and (terminations["bidder_0"] or truncations["bidder_0"])
    torch.testing.assert_close(torch.tensor(delivered), expected, rtol=0, atol=1e-6)


def test_independent_learners_written_for_pettingzoo_learn_chain():
    path = Path(__file__).parents[1] / "examples" / "independent_bidders.py"
    spec = importlib.util.spec_from_file_location("independent_bidders", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    env = AuctionEnv("societal/Chain-v0", mechanism="ccv")
    value = example.train(env, episodes=300, seed=1)
    assert example.greedy_choices(env, value)[:5] == [1, 1, 1, 1, 1]  # Right in every state before the goal


def test_a_missing_or_non_finite_bid_is_one_clear_error():
    env = AuctionEnv("societal/Chain-v0")
    env.reset(seed=0)
    bids = {a: np.array([0.5], np.float32) for a in env.agents}
    with pytest.raises(ValueError, match="none from bidder_1"):
        env.step({**bids, "bidder_1": np.array([np.nan], np.float32)})
    with pytest.raises(ValueError, match="none from bidder_0"):
        env.step({a: b for a, b in bids.items() if a != "bidder_0"})
