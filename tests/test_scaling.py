"""The return scale of tasks without a table: the probe, the automatic rescaling and the warnings."""

import json
import warnings

import numpy as np
import pytest

import societal
from societal.config import from_preset
from societal.errors import SocietalWarning
from societal.learning import scaling
from societal.learning.scaling import fit_return_scale, floor_2, probe, table_scale


def cartpole(**settings):
    return from_preset("general", "CartPole-v1", **settings).validate()


def test_probe_bounds_cartpole_returns_by_a_policy_that_lasts():
    scale = probe(cartpole())
    assert scale.rate == pytest.approx((1 - 0.99**500) / 0.01)  # reward 1 at every step, until step 500
    assert 10 < scale.highest < scale.rate and scale.lowest == 1.0  # random episodes are short
    assert probe(cartpole(reward_scale=0.01)).rate == pytest.approx(0.01 * scale.rate)


def test_auto_scale_divides_rewards_by_the_bound_and_is_idempotent():
    fitted = fit_return_scale(cartpole(auto_scale=True))
    assert fitted.reward_scale == 0.01 and fitted.reward_shift == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit_return_scale(fitted) == fitted
    shifted = fit_return_scale(cartpole(auto_scale=True, reward_shift=0.5))  # 1.5 a step: the bound is ≈ 149
    assert shifted.reward_scale == 0.0067 and shifted.reward_shift == pytest.approx(0.5 * 0.0067)


def test_without_auto_scale_one_warning_names_the_scale():
    config = cartpole(auto_scale=False)
    with pytest.warns(SocietalWarning, match=r"span ≈ 99.3, but bids lie in \[0, 1\]: use --reward-scale 0.01"):
        assert fit_return_scale(config) == config


def test_negative_returns_are_reported_not_shifted_without_absorbing_shift():
    # -1 a step: returns down to -99.3 (a policy that lasts), scaled by 0.01
    with pytest.warns(SocietalWarning, match="go down to -0.993, .*absorbing_shift=True"):
        fitted = fit_return_scale(cartpole(auto_scale=True, absorbing_shift=False, reward_shift=-2.0))
        assert fitted.reward_shift == pytest.approx(-0.02)


def test_an_absorbing_shift_lifts_negative_returns_into_the_bids():
    # Acrobot pays -1 a step and 0 at the goal: returns down to -99.3 at the time limit (500 steps)
    config = from_preset("general", "Acrobot-v1", auto_scale=True, absorbing_shift=True).validate()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = fit_return_scale(config)
        assert (fitted.reward_scale, fitted.reward_shift) == (0.01, 0.01)  # a step pays 0, the goal 0.01 + 0.99
        assert fitted.reward_end() == pytest.approx(0.99)
        assert fit_return_scale(fitted) == fitted


def test_an_absorbing_shift_moves_every_value_by_the_same_amount():
    from societal.environments.mdp import value_iteration
    from societal.environments.tabular import finite_mdp
    from societal.environments.vector import make

    gamma, scale, shift = 0.9, 0.5, -0.2
    mdp = finite_mdp(make("societal/Chain-v0", length=6))
    q = value_iteration(mdp, gamma)
    shifted = value_iteration(mdp.scaled(scale, shift, gamma * shift / (1 - gamma)), gamma)
    assert np.allclose(shifted, scale * q + shift / (1 - gamma))
    plain = value_iteration(mdp.scaled(scale, shift), gamma)  # a plain shift pays for lasting longer
    assert not np.allclose(plain, scale * q + shift / (1 - gamma))


def test_the_papers_tasks_are_not_probed(monkeypatch):
    monkeypatch.setattr(scaling, "make", lambda *a, **k: pytest.fail("a paper task was made"))
    config = from_preset(None, "societal/MentalRotation-v0").validate()  # no table: its rewards fit the bids
    assert fit_return_scale(config) == config


def test_monolithic_agents_and_finite_tasks_that_fit_are_left_alone():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frozenlake = from_preset("general", "FrozenLake-v1").validate()
        for config in (frozenlake, cartpole(agent="monolithic", auto_scale=True)):
            assert fit_return_scale(config) == config


def test_a_finite_tasks_range_runs_from_random_play_to_the_best_q_star():
    from societal.config import Config
    from societal.environments.mdp import FiniteMDP

    # one state: "end" pays 1 and ends, "stay" pays -2 and stays (γ = 0.9). Q*(end) = 1 is the highest; random
    # play is worth V = 0.5 · 1 + 0.5 · (-2 + 0.9 V), V = -0.5 / 0.55, below the lowest max_a Q* (1)
    mdp = FiniteMDP(np.array([[[0.0], [1.0]]]), np.array([[1.0, -2.0]]), np.ones(1))
    scale = table_scale(Config(gamma=0.9), mdp)
    assert scale.highest == pytest.approx(1.0) and scale.lowest == pytest.approx(-0.5 / 0.55)


def test_a_finite_task_with_step_costs_is_mapped_into_the_bids_keeping_what_is_best():
    from societal.environments.mdp import task_q
    from societal.environments.tabular import finite_mdp
    from societal.environments.vector import make
    from societal.exact import market_task, policy_values

    kwargs = dict(rows=2, cols=3, pits=0, step_reward=-1.0, goal_reward=1.0)  # -1 a step, 1 at the goal
    config = from_preset("general", "societal/GridWorld-v0", env_kwargs=kwargs).validate()
    fitted = fit_return_scale(config)
    mdp = finite_mdp(make("societal/GridWorld-v0", **kwargs))
    scale, shift = fitted.reward_scale, fitted.reward_shift
    assert scale == floor_2(scale) and 0 < scale < 1 and shift > 0  # two significant digits
    paid = market_task(mdp, fitted)
    q, mapped = task_q(mdp, 0.99)[0], task_q(paid, 0.99)[0]
    assert np.allclose(mapped, scale * q + shift / 0.01)  # every value moved alike: what is best is unchanged
    random = policy_values(paid, np.full(q.shape, 0.25), 0.99)
    assert mapped.max() <= 1 and min(mapped.max(1).min(), random.min()) >= 0  # from random play to Q*, in [0, 1]
    assert mapped.max() > 0.98 and random.min() < 0.02  # and no wider than two digits need


def test_floor_2_keeps_two_significant_digits_rounding_down():
    assert [floor_2(x) for x in (0.010066, 0.0567, 1 / 3, 12.34)] == [0.01, 0.056, 0.33, 12.0]


def test_a_run_records_the_scale_it_used(tmp_path):
    run = societal.train("CartPole-v1", out=tmp_path / "run", auto_scale=True, steps=4096, num_envs=64,
                         eval_episodes=4, progress=False)
    assert json.loads((run.path / "config.json").read_text())["reward_scale"] == 0.01

