"""Exact evaluation: win probabilities, policy returns against Monte Carlo, and the assessment of an agent."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import societal  # noqa: F401  (registers the ids)
from societal.environments import finite_mdp, value_iteration
from societal.environments.mdp import FiniteMDP, task_q, visited_by
from societal.environments.tabular import TabularVecEnv
from societal.exact import assess, optimal_return, policy, policy_return, score, win_probabilities
from societal.monolithic import Monolithic
from societal.society import Society

GAMMA = 0.99


def test_win_probabilities_match_sampled_auctions():
    alpha = torch.tensor([[2.0, 2.0, 5.0, 5.0, 1.0], [50.0, 50.0, 60.0, 60.0, 3.0]])
    beta = torch.tensor([[3.0, 3.0, 5.0, 5.0, 1.0], [20.0, 20.0, 20.0, 20.0, 1.0]])
    torch.manual_seed(0)
    draws = torch.distributions.Beta(alpha, beta).sample((400_000,)).argmax(-1)
    sampled = torch.nn.functional.one_hot(draws, 5).double().mean(0)
    torch.testing.assert_close(win_probabilities(alpha, beta), sampled, atol=3e-3, rtol=0)
    # two bidders with one distribution win half each, whatever the distribution
    assert win_probabilities(torch.tensor([[30.0, 30.0]]), torch.tensor([[4.0, 4.0]]))[0].tolist() == \
        pytest.approx([0.5, 0.5], abs=1e-9)


def monte_carlo(env_id, kwargs, agent, greedy, episodes=40_000):
    """Mean discounted return of the agent's episodes, and its standard error."""
    vec = TabularVecEnv(gym.make(env_id, **kwargs).unwrapped, episodes, torch.device("cpu"))
    obs, total = vec.reset(seed=0), torch.zeros(episodes, dtype=torch.float64)
    running, discount = torch.ones(episodes, dtype=torch.bool), torch.ones(episodes, dtype=torch.float64)
    while running.any():
        obs, reward, term, trunc, _ = vec.step(agent.act(obs, greedy=greedy), running)
        total += discount * reward * running
        discount *= GAMMA
        running &= ~(term | trunc)
    return total.mean().item(), total.std().item() / episodes**0.5


@pytest.mark.parametrize("greedy", [False, True])
@pytest.mark.parametrize("kind", ["society", "monolithic"])
def test_exact_policy_return_equals_monte_carlo(kind, greedy):
    env_id, kwargs = "societal/RandomMDP-v0", dict(states=8, actions=3, seed=1, horizon=30)
    mdp = finite_mdp(gym.make(env_id, **kwargs))
    torch.manual_seed(3)
    agent = Society((8,), 3) if kind == "society" else Monolithic((8,), 3)
    with torch.no_grad():  # a policy that is neither uniform nor deterministic (nor degenerate: α, β ≥ 0.3)
        agent.theta.add_(torch.randn_like(agent.theta), alpha=0.3 if kind == "society" else 0.7)
    exact = policy_return(mdp, policy(agent, 8, greedy), GAMMA)
    mean, error = monte_carlo(env_id, kwargs, agent, greedy)
    assert abs(exact - mean) < 4 * error + 1e-9, (exact, mean, error)


def test_the_optimal_policy_gets_the_optimal_return_and_others_less():
    mdp = finite_mdp(gym.make("societal/Chain-v0", length=10))
    q = value_iteration(mdp, GAMMA)
    best = np.eye(2)[q.argmax(1)]
    assert policy_return(mdp, best, GAMMA) == pytest.approx(optimal_return(mdp, GAMMA))
    assert optimal_return(mdp, GAMMA) == pytest.approx(0.8 * GAMMA**8)
    assert policy_return(mdp, np.full((10, 2), 0.5), GAMMA) < 0.5 * optimal_return(mdp, GAMMA)
    assert visited_by(mdp, best).tolist() == [True] * 9 + [False]  # the goal state is entered, never left
    # without a time limit (a linear solve) the same policy is worth the same here
    mdp.horizon = None
    assert policy_return(mdp, best, GAMMA) == pytest.approx(0.8 * GAMMA**8)


def test_assessment_of_a_society_that_bids_q_star():
    mdp = finite_mdp(gym.make("societal/Chain-v0", length=6))
    q = value_iteration(mdp, GAMMA)
    society = Society((6,), 2)
    society.init_bids(0.5, 2000.0)
    with torch.no_grad():  # head bias per primitive: mean bid of Right = Q*(s, Right) ≈ 0.77–0.80, Left ≈ 0.1
        theta = society.theta[:, society.encoder.size : society.split].view(2, 16 + 1, 2)
        theta[1, 16, 0] = float(np.log(0.79 / 0.21))
        theta[0, 16, 0] = float(np.log(0.1 / 0.9))
    result = assess(society, mdp, GAMMA)
    assert result.fraction_greedy == pytest.approx(1.0) and result.fraction_sampled > 0.99
    assert result.score_greedy == pytest.approx(1.0) and result.random_return < result.return_sampled
    assert result.optimal_choice == 1.0
    assert result.bids_close == 1.0 and result.worst_bid_error == pytest.approx(max(abs(0.79 - q[:5, 1])), abs=1e-4)


def test_the_score_is_zero_for_the_random_policy_and_one_for_the_optimum_whatever_the_rewards_sign():
    mdp = finite_mdp(gym.make("CliffWalking-v1"))
    q = value_iteration(mdp, GAMMA)
    m = q.shape[1]
    random, best = policy_return(mdp, np.full(q.shape, 1 / m), GAMMA), optimal_return(mdp, GAMMA)
    assert random < best < 0  # a ratio to the optimum would call the random policy 88 times better
    assert score(random, random, best) == 0 and score(best, random, best) == 1
    mixed = policy_return(mdp, 0.5 * np.eye(m)[q.argmax(1)] + 0.5 / m, GAMMA)
    assert random < mixed < best and 0 < score(mixed, random, best) < 1


def _route_choice(horizon: int) -> FiniteMDP:
    """State 0: action 0 takes a long way (states 1, 2, then the end, paying 1: three steps), action 1 ends at
    once paying 0.5; in states 1 and 2 both actions go on."""
    transition = np.zeros((3, 2, 3))
    transition[0, 0, 1] = transition[1, :, 2] = 1.0
    reward = np.array([[0.0, 0.5], [0.0, 0.0], [1.0, 1.0]])
    return FiniteMDP(transition, reward, np.eye(3)[0], horizon)


def test_q_star_within_a_time_limit_is_what_the_steps_left_allow():
    gamma = 0.9
    q, on_path = task_q(_route_choice(None), gamma)  # no limit: the long way, γ² · 1 = 0.81
    assert np.allclose(q, [[0.81, 0.5], [0.9, 0.9], [1.0, 1.0]]) and on_path.tolist() == [True, True, True]
    assert optimal_return(_route_choice(None), gamma) == pytest.approx(0.81)
    q, on_path = task_q(_route_choice(2), gamma)  # two steps cannot finish the long way: end at once
    assert np.allclose(q[0], [0.0, 0.5]) and on_path.tolist() == [True, False, False]
    assert np.allclose(q[1:], [[0.9, 0.9], [1.0, 1.0]])  # off the path: as if with all the time left
    assert optimal_return(_route_choice(2), gamma) == pytest.approx(0.5)
    assert optimal_return(_route_choice(3), gamma) == pytest.approx(0.81)


def test_a_state_visited_at_several_times_is_priced_at_the_mean_over_its_visits():
    # one state, one action: the episode ends paying 1 with probability 0.5, else stays. Horizon 2, γ = 0.9:
    # Q*_1 = 0.5, Q*_2 = 0.5 + 0.9 · 0.5 · 0.5 = 0.725; visited at step 0 (probability 1) and 1 (0.5)
    mdp = FiniteMDP(np.full((1, 1, 1), 0.5), np.full((1, 1), 0.5), np.ones(1), 2)
    q, _ = task_q(mdp, 0.9)
    assert q[0, 0] == pytest.approx((1 * 0.725 + 0.5 * 0.5) / 1.5)


def test_an_absorbing_shift_moves_values_within_a_time_limit_alike():
    mdp, gamma, scale, shift = _route_choice(2), 0.9, 0.5, -0.2
    shifted = mdp.scaled(scale, shift, gamma * shift / (1 - gamma), shift / (1 - gamma))
    assert np.allclose(task_q(shifted, gamma)[0], scale * task_q(mdp, gamma)[0] + shift / (1 - gamma))
    assert optimal_return(shifted, gamma) == pytest.approx(scale * 0.5 + shift / (1 - gamma))
