"""The tabular tasks, their batched twins, value iteration, and Gymnasium environments as societies."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import societal  # noqa: F401  (registers the ids)
from societal.environments import finite_mdp, value_iteration
from societal.environments.tabular import TabularVecEnv
from societal.environments.vector import GymVecEnv, make, make_vec
from societal.errors import SocietalError

IDS = ["societal/Bandit-v0", "societal/Chain-v0", "societal/Duality-v0"]


@pytest.mark.parametrize("env_id", IDS)
def test_passes_gymnasium_env_checker(env_id):
    check_env(gym.make(env_id).unwrapped, skip_render_check=True)


def rollout(env, actions):
    env.reset(seed=0)
    return [env.step(a)[1:4] for a in actions]


def test_bandit_pays_k_plus_one_over_arms_plus_one():
    for k in range(4):
        assert rollout(gym.make("societal/Bandit-v0"), [k]) == [(pytest.approx((k + 1) / 5), True, False)]
    assert rollout(gym.make("societal/Bandit-v0", arms=9), [8])[0][0] == pytest.approx(0.9)


def test_chain_goal_reward_and_horizon():
    steps = rollout(gym.make("societal/Chain-v0"), [1] * 5)
    assert [s[0] for s in steps] == [0, 0, 0, 0, pytest.approx(0.8)] and steps[-1][1]
    steps = rollout(gym.make("societal/Chain-v0"), [0] * 20)
    assert all(r == 0 and not term for r, term, _ in steps) and steps[-1][2] and not steps[-2][2]
    assert gym.make("societal/Chain-v0", length=10).unwrapped.horizon == 36


def test_duality_alternation_is_optimal_and_the_trap_costs():
    steps = rollout(gym.make("societal/Duality-v0"), [1, 0] * 5)
    assert sum(s[0] for s in steps) == pytest.approx(5.0) and steps[-1][2] and not any(s[1] for s in steps)
    assert sum(s[0] for s in rollout(gym.make("societal/Duality-v0"), [0] * 10)) == pytest.approx(-9.0)


def test_chain_q_star_matches_the_paper_table():
    q = value_iteration(finite_mdp(gym.make("societal/Chain-v0")), 0.99)
    np.testing.assert_allclose(q[:5, 1], 0.8 * 0.99 ** np.arange(4, -1, -1), atol=1e-6)
    np.testing.assert_allclose(q[:5, 0], [0.760792, 0.760792, 0.768477, 0.776239, 0.784080], atol=1e-6)


def test_q_star_of_a_toy_text_task_from_its_transition_table():
    q = value_iteration(finite_mdp(gym.make("FrozenLake-v1", is_slippery=False)), 0.99)
    assert q[14, 2] == pytest.approx(1.0) and q[0].max() == pytest.approx(0.99**5)


@pytest.mark.parametrize("env_id", IDS)
def test_vectorised_twin_steps_like_the_gymnasium_env(env_id):
    env = gym.make(env_id).unwrapped
    vec = TabularVecEnv(env, 5, torch.device("cpu"))
    obs = vec.reset()
    singles = [gym.make(env_id).unwrapped for _ in range(5)]
    states = [e.reset(seed=0)[0] for e in singles]
    rng = np.random.default_rng(0)
    for _ in range(60):
        assert obs.argmax(1).tolist() == states
        actions = rng.integers(0, env.action_space.n, 5)
        obs, reward, term, trunc, final = vec.step(torch.as_tensor(actions))
        for i, e in enumerate(singles):
            s, r, te, tr, _ = e.step(actions[i])
            assert (reward[i].item(), term[i].item(), trunc[i].item()) == (pytest.approx(r), te, tr)
            assert final[i].argmax().item() == s
            states[i] = e.reset()[0] if te or tr else s


def test_any_discrete_gymnasium_env_becomes_a_tensor_batch():
    vec = GymVecEnv("FrozenLake-v1", {}, 3, torch.device("cpu"))
    obs = vec.reset(seed=0)
    assert obs.shape == (3, 16) and torch.equal(obs.sum(1), torch.ones(3))
    obs, reward, term, _, final = vec.step(torch.tensor([0, 1, 2]))
    assert torch.equal(final[~term], obs[~term])
    assert obs.shape == (3, 16) and reward.dtype == torch.float32 and term.dtype == torch.bool
    box = make_vec("CartPole-v1", {}, 2, torch.device("cpu"))
    assert box.reset(seed=1).shape == (2, 4)


@pytest.mark.parametrize("env_id,message", [
    ("NoSuchEnv-v0", "unknown environment"),
    ("Pendulum-v1", "needs a Discrete one"),
])
def test_unsupported_environments_are_clear_errors(env_id, message):
    with pytest.raises(SocietalError, match=message):
        make(env_id)


def test_bad_environment_kwargs_are_clear_errors():
    with pytest.raises(SocietalError, match="length"):
        make("societal/Chain-v0", length=1)
    with pytest.raises(SocietalError, match="unexpected keyword"):
        make("societal/Chain-v0", colour="red")
