"""Generated finite tasks and tables of outcomes: determinism, hand-solved Q*, and toy-text tasks as tables."""

import copy
from collections import Counter

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import societal  # noqa: F401  (registers the ids)
from societal.environments import finite_mdp, value_iteration
from societal.environments.tabular import TabularVecEnv, from_transition_table
from societal.environments.vector import make, make_vec
from societal.errors import SocietalError
from societal.exact import optimal_return, policy_return
from societal.experiments.markets import TASKS


@pytest.mark.parametrize("env_id,kwargs", [("societal/RandomMDP-v0", dict(states=12, actions=3, seed=4)),
                                           ("societal/GridWorld-v0", dict(rows=6, pits=5, slip=0.1, seed=2)),
                                           ("societal/Deadline-v0", dict(seed=3)), ("societal/Lure-v0", dict(seed=1))])
def test_a_generator_seed_fixes_the_task(env_id, kwargs):
    a, b = (gym.make(env_id, **kwargs).unwrapped for _ in range(2))
    other = gym.make(env_id, **{**kwargs, "seed": kwargs["seed"] + 1}).unwrapped
    for name in ("next_state", "reward", "terminal", "prob"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not all(np.array_equal(getattr(a, n), getattr(other, n)) for n in ("next_state", "reward", "terminal"))
    np.testing.assert_allclose(a.prob.sum(2), 1.0)
    check_env(a, skip_render_check=True)


def test_random_mdps_pay_in_zero_one_only_when_an_episode_ends_and_have_a_pit_and_traps():
    env = gym.make("societal/RandomMDP-v0", states=20, actions=3, exits=4, traps=2, seed=6).unwrapped
    paid = env.reward > 0
    assert (env.terminal[paid]).all() and env.reward.max() <= 1 and env.reward.min() >= 0
    assert ((env.terminal & (env.reward == 0)).any(axis=2)).sum() == 1  # the pit
    traps = [s for s in range(20) if (env.next_state[s] == s).all()]
    assert len(traps) == 2 and not env.terminal[traps].any()
    q = value_iteration(finite_mdp(env), 0.99)
    assert q[0].max() > 0.05 and q.max() <= 1


def test_grid_world_q_star_by_hand():
    # 2×2, no pits: start (0,0), goal (1,1). From (0,1) or (1,0) one step pays 1; from the start two steps.
    env = gym.make("societal/GridWorld-v0", rows=2, pits=0).unwrapped
    q = value_iteration(finite_mdp(env), 0.9)
    left, down, right, up = range(4)
    assert q[1, down] == pytest.approx(1.0) and q[2, right] == pytest.approx(1.0)
    assert q[0, right] == pytest.approx(0.9) and q[0, down] == pytest.approx(0.9)
    assert q[0, left] == pytest.approx(0.81) and q[1, up] == pytest.approx(0.9)  # a wall: stay, then go
    # with slip 0.2 from (0,1): Down reaches the goal w.p. 0.8, slips left to the start or right into the wall
    slippery = gym.make("societal/GridWorld-v0", rows=2, pits=0, slip=0.2).unwrapped
    q = value_iteration(finite_mdp(slippery), 0.9)
    v = q.max(1)
    assert q[1, down] == pytest.approx(0.8 + 0.9 * (0.1 * v[0] + 0.1 * v[1]))


def test_the_cliff_ends_the_episode_with_nothing():
    env = gym.make("societal/GridWorld-v0", rows=4, cols=12, cliff=True, pits=0).unwrapped
    env.reset(seed=0)
    assert env.state == 36 and env.step(2)[1:3] == (0.0, True)  # right from the start: into the cliff


def test_the_suite_has_every_family_and_three_instances_of_each_failure_class():
    assert len(TASKS) >= 30 and len({name for name, _, _ in TASKS}) == len(TASKS)
    families = Counter(name.split("-")[0] for name, _, _ in TASKS)
    assert set(families) == {"mdp", "grid", "cliff", "chain", "bandit", "frozenlake", "deadline", "costgrid", "taxi",
                             "lure"}
    assert min(families["deadline"], families["costgrid"] + families["taxi"], families["lure"]) >= 3
    for name, env, kwargs in TASKS:
        assert finite_mdp(make(env, **kwargs)) is not None, name


@pytest.mark.parametrize("seed", range(3))
def test_a_deadlines_best_route_without_the_limit_pays_nothing_within_it(seed):
    env = gym.make("societal/Deadline-v0", seed=seed).unwrapped
    mdp = finite_mdp(env)
    q = value_iteration(mdp, 0.99)  # without the limit: route 0, longer than the horizon
    assert q[0].argmax() == 0 and env.lengths[0] > env.horizon >= env.lengths[1]
    no_limit = np.eye(q.shape[1])[q.argmax(1)]
    assert policy_return(mdp, no_limit, 0.99) == 0 < optimal_return(mdp, 0.99)


@pytest.mark.parametrize("seed", range(3))
def test_a_lure_pays_less_than_the_long_way_and_never_ends(seed):
    env = gym.make("societal/Lure-v0", seed=seed).unwrapped
    q = value_iteration(finite_mdp(env), 0.99)
    region = range(env.length, env.observation_space.n)
    assert q[0].max() == pytest.approx(0.99 ** (env.length - 1))  # the long way, above the lure (0.3)
    assert 0.3 in q[0].round(6) and not env.terminal[region].any() and np.isin(env.next_state[region], region).all()


@pytest.mark.parametrize("kwargs", [dict(states=3), dict(states=8, actions=3, exits=20), dict(horizon=0)])
def test_bad_generator_arguments_are_one_clear_line(kwargs):
    with pytest.raises(SocietalError, match="RandomMDP-v0"):
        make("societal/RandomMDP-v0", **kwargs)


def test_a_deterministic_toy_text_task_steps_as_its_table():
    env = gym.make("FrozenLake-v1", is_slippery=False)
    vec = make_vec("FrozenLake-v1", {"is_slippery": False}, 4, torch.device("cpu"))
    assert isinstance(vec, TabularVecEnv) and vec.horizon == 100
    singles = [gym.make("FrozenLake-v1", is_slippery=False) for _ in range(4)]
    states = [e.reset(seed=0)[0] for e in singles]
    obs, rng = vec.reset(seed=0), np.random.default_rng(0)
    for _ in range(200):
        assert obs.argmax(1).tolist() == states
        actions = rng.integers(0, 4, 4)
        obs, reward, term, trunc, final = vec.step(torch.as_tensor(actions))
        for i, e in enumerate(singles):
            s, r, te, tr, _ = e.step(actions[i])
            assert (reward[i].item(), term[i].item(), trunc[i].item(), final[i].argmax().item()) == (r, te, tr, s)
            states[i] = e.reset()[0] if te or tr else s
    assert env.spec.max_episode_steps == 100


@pytest.mark.parametrize("env_id,kwargs", [("FrozenLake-v1", {"map_name": "8x8"}),
                                           ("CliffWalking-v1", {"is_slippery": True, "max_episode_steps": 60})])
def test_a_stochastic_toy_text_task_steps_as_its_table_given_the_same_uniform_draws(env_id, kwargs, monkeypatch):
    env = gym.make(env_id, **kwargs)
    vec = make_vec(env_id, kwargs, 1, torch.device("cpu"))
    assert isinstance(vec, TabularVecEnv)
    state, obs, rng = env.reset(seed=5)[0], vec.reset(seed=5), np.random.default_rng(0)
    for _ in range(400):
        assert obs.argmax(1).item() == state
        u = copy.deepcopy(env.unwrapped.np_random).random()  # the draw Gymnasium's next step will make
        monkeypatch.setattr(torch, "rand", lambda *shape, u=u, **kw: torch.full(shape, u))
        action = int(rng.integers(0, env.action_space.n))
        obs, reward, term, trunc, final = vec.step(torch.tensor([action]))
        monkeypatch.undo()
        s, r, te, tr, _ = env.step(action)
        assert (reward.item(), term.item(), trunc.item(), final.argmax().item()) == (r, te, tr, s)
        state = env.reset()[0] if te or tr else s


def test_a_stochastic_table_draws_outcomes_and_starts_with_the_table_probabilities():
    vec = make_vec("FrozenLake-v1", {"is_slippery": True}, 20000, torch.device("cpu"))
    vec.reset(seed=1)
    vec.state.fill_(6)  # row 1, column 2 of the 4×4 map
    _, _, _, _, final = vec.step(torch.full((20000,), 1))  # Down: 1/3 each to Down, Left, Right
    share = torch.bincount(final.argmax(1), minlength=16).float() / 20000
    assert share[[10, 5, 7]].tolist() == pytest.approx([1 / 3] * 3, abs=0.015)
    taxi = make_vec("Taxi-v4", {}, 20000, torch.device("cpu"))
    starts = taxi.reset(seed=0).argmax(1)
    table = from_transition_table(gym.make("Taxi-v4"))
    assert set(starts.unique().tolist()) <= set(np.flatnonzero(table.start).tolist())
    assert starts.unique().numel() > 250  # 300 possible starts, drawn uniformly


def test_seeded_tables_repeat_and_unseeded_streams_differ():
    def steps(seed):
        vec = make_vec("FrozenLake-v1", {"is_slippery": True}, 64, torch.device("cpu"))
        vec.reset(seed=seed)
        return torch.stack([vec.step(torch.full((64,), 2))[4].argmax(1) for _ in range(20)])

    assert torch.equal(steps(3), steps(3)) and not torch.equal(steps(3), steps(4))


def test_taxis_fickle_passenger_leaves_the_table_and_stays_a_gymnasium_env():
    assert from_transition_table(gym.make("Taxi-v4", fickle_passenger=True)) is None
    assert not isinstance(make_vec("Taxi-v4", {"fickle_passenger": True}, 2, torch.device("cpu")), TabularVecEnv)
