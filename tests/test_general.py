"""The market beyond the paper: presets, the new training rules, warnings, and the general preset learning."""

import json
import re
import warnings

import gymnasium as gym
import pandas as pd
import pytest
import torch

import societal
from societal.cli import main
from societal.config import PRESETS, Config, from_preset
from societal.environments import finite_mdp
from societal.environments.tabular import TabularVecEnv
from societal.errors import SocietalError, SocietalWarning
from societal.exact import assess
from societal.learning.rollout import Collector
from societal.primitives import LiteralActions
from societal.society import Society

FAST = dict(steps=20_000, eval_every=2, eval_episodes=20, progress=False)


def test_presets_apply_under_explicit_settings_and_are_recorded(tmp_path):
    assert from_preset(None, "societal/Chain-v0").preset == "paper"
    assert from_preset(None, "FrozenLake-v1").preset == "general"
    c = from_preset("general", "societal/Chain-v0", entropy=0.05)
    assert c.entropy == 0.05 and c.price == PRESETS["general"]["price"] and c.eval_greedy
    run = societal.train("societal/Chain-v0", preset="general", policy_lr=1e-4, out=tmp_path / "g", **FAST)
    saved = json.loads((run.path / "config.json").read_text())
    assert saved["preset"] == "general" and saved["policy_lr"] == 1e-4 and saved["price"] == "mean"
    assert main(["train", "societal/Chain-v0", "--preset", "general", "--set", "entropy=0.2", "--steps", "4096",
                 "--quiet", "--out", str(tmp_path / "cli")]) == 0
    saved = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert saved["entropy"] == 0.2 and saved["bid_init_mean"] == PRESETS["general"]["bid_init_mean"]
    with pytest.raises(SocietalError, match="unknown preset 'fast'; allowed: paper, general, general_mlp, control"):
        societal.train("societal/Chain-v0", preset="fast")


def test_entropy_schedule_halves_toward_its_floor():
    c = Config(entropy=0.1, entropy_final=0.01, entropy_halflife=1000)
    assert [c.entropy_at(t) for t in (0, 1000, 2000)] == pytest.approx([0.1, 0.055, 0.0325])
    assert Config(entropy=0.1).entropy_at(10**9) == 0.1


def test_optimistic_bids_and_greedy_auctions():
    society = Society((3,), 2)
    society.init_bids(0.9, 10.0)
    alpha, beta = society.distribution(torch.eye(3))
    torch.testing.assert_close(alpha, torch.full_like(alpha, 9.0))
    torch.testing.assert_close(beta, torch.full_like(beta, 1.0))
    with torch.no_grad():  # primitive 1's mean bid above primitive 0's: greedy auctions always pick it
        society.theta[1, society.encoder.size + 2 * 16] += 0.5
    obs = torch.eye(3).repeat(500, 1)
    assert (society.act(obs, greedy=True) == 1).all()
    assert 0 < (society.act(obs) == 0).float().mean() < 0.5  # sampled bids still let primitive 0 win


def test_count_bonus_pays_the_winner_less_at_each_repeat():
    env = TabularVecEnv(gym.make("societal/Chain-v0").unwrapped, 1, torch.device("cpu"))
    collector = Collector(Society((6,), 2), LiteralActions(2), env, "env", 0.99, False, bonus=0.3)
    obs = collector.observed(torch.eye(6)[[0]])  # state 0
    paid = [collector.count_bonus(obs, torch.tensor([1])).item() for _ in range(4)]
    assert paid == pytest.approx([0.3, 0.3 / 2**0.5, 0.3 / 3**0.5, 0.15])
    assert collector.count_bonus(obs, torch.tensor([0])).item() == pytest.approx(0.3)  # another primitive


def test_mean_prices_conserve_credit_and_exploration_is_reported(tmp_path):
    run = societal.train("societal/Chain-v0", price="mean", out=tmp_path / "mean", **FAST)
    assert (run.metrics.conservation_residual.dropna().abs() < 1e-6).all()
    run = societal.train("societal/Chain-v0", price="mean", explore=0.2, out=tmp_path / "explore", **FAST)
    assert (run.metrics.conservation_residual.dropna().abs() > 1e-4).any()


@pytest.mark.parametrize("env_id,kwargs,message", [
    ("CliffWalking-v1", dict(reward_scale=0.01, reward_shift=1.0, auto_scale=False, absorbing_shift=False),
     "never ends an episode"),
    ("Taxi-v4", dict(reward_scale=0.05, auto_scale=False), r"rewards range over \[-0.5, 1\]"),
    ("societal/Chain-v0", dict(reward_scale=2.0), r"Q\* ranges over \[0, 1.6\]"),
])
def test_warnings_say_what_keeps_bids_from_q_star(tmp_path, env_id, kwargs, message):
    with pytest.warns(SocietalWarning, match=message):
        societal.train(env_id, out=tmp_path / "run", steps=1, eval_episodes=2, eval_max_auctions=5, progress=False,
                       **kwargs)


def test_no_warning_where_the_market_can_express_q_star(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SocietalWarning)
        societal.train("FrozenLake-v1", out=tmp_path / "run", steps=1, eval_episodes=2, progress=False)
    assert main(["train", "societal/Chain-v0", "--reward-scale", "2", "--steps", "1", "--quiet",
                 "--out", str(tmp_path / "cli")]) == 0
    assert "societal train: warning: Q* ranges over" in capsys.readouterr().err


@pytest.mark.slow
def test_the_general_preset_solves_a_task_outside_the_suite_and_prices_its_path(tmp_path):
    env, kwargs = "societal/RandomMDP-v0", dict(states=10, actions=3, seed=100, horizon=40)
    run = societal.train(env, preset="general", env_kwargs=kwargs, steps=600_000, out=tmp_path / "run",
                         progress=False)
    result = assess(run.agent, finite_mdp(gym.make(env, **kwargs)), 0.99)
    assert result.fraction_greedy >= 0.95 and result.bids_close >= 0.8


@pytest.mark.parametrize("bootstrap", [False, True])
def test_a_time_limit_cut_sells_the_last_state_only_where_asked(bootstrap):
    env = TabularVecEnv(gym.make("societal/Chain-v0", length=3).unwrapped, 64, torch.device("cpu"))  # horizon 8
    society = Society((3,), 2)
    society.init_bids(0.5, 1e6)  # every mean bid 0.5: mean prices are exactly 0.5
    collector = Collector(society, LiteralActions(2), env, "ccv", 0.9, False, price="mean",
                          bootstrap_truncated=bootstrap)
    rollout = collector.collect(40)
    u = rollout.utility.sum(2)
    cut = rollout.last & (u < 0)  # episodes that ended without the goal's 0.8 (0.8 − 0.5 > 0): cut by the time limit
    going_on = ~rollout.last
    assert cut.any() and torch.allclose(u[going_on], torch.tensor(0.9 * 0.5 - 0.5))
    expected = 0.9 * 0.5 - 0.5 if bootstrap else -0.5  # resold at the price of the state where it ended, or for 0
    assert torch.allclose(u[cut], torch.tensor(expected))


@pytest.mark.parametrize("bootstrap", [False, True])
def test_an_absorbing_shift_pays_a_cut_episode_its_future_where_the_limit_is_part_of_the_task(bootstrap):
    env = TabularVecEnv(gym.make("societal/Chain-v0", length=3).unwrapped, 64, torch.device("cpu"))  # horizon 8
    society = Society((3,), 2)
    society.init_bids(0.5, 1e6)
    # shift 0.1 paid forever after an end: γ · 0.1 / (1 − γ) = 0.9 more on the last step
    collector = Collector(society, LiteralActions(2), env, "ccv", 0.9, False, reward_shift=0.1, price="mean",
                          bootstrap_truncated=bootstrap, reward_end=0.9)
    rollout = collector.collect(40)
    u = rollout.utility.sum(2)
    goal, going_on = rollout.last & (u > 1.0), ~rollout.last  # the goal pays 0.8 + 0.1 + 0.9 − 0.5
    cut = rollout.last & ~goal
    assert cut.any() and goal.any() and torch.allclose(u[going_on], torch.tensor(0.1 + 0.9 * 0.5 - 0.5))
    expected = 0.1 + 0.9 * 0.5 - 0.5 if bootstrap else 0.1 + 0.9 - 0.5  # resold, or the shift's future paid
    assert torch.allclose(u[cut], torch.tensor(expected))


def test_the_markets_experiment_judges_every_run_exactly(tmp_path, capsys):
    from societal.experiments.paper import commands

    runs = [(folder, argv) for folder, argv in commands("markets", 1, tmp_path, scale=0.0008)
            if folder.parts[-3] in ("bandit-8", "chain-10")]
    assert len(runs) == 10 and all("--steps" in argv and "4000" in argv for _, argv in runs)
    for _, argv in runs:
        assert main([*[a for a in argv if a != "--compile"], "--set", "eval_episodes=10", "--quiet"]) == 0
    assert main(["experiments", "markets", "--report", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "tuned PPO (ppo-tuned or ppo-cleanrl, median over seeds ≥ 0.95) solves" in out
    assert re.search(r"^general: solves \d of 2 tasks .* runs ≥ 0.95: sampled \d of 2, greedy \d$", out, re.M), out
    table = pd.read_csv(tmp_path / "markets" / "assessment.csv")
    assert set(table.condition) == {"paper", "general", "monolithic", "ppo-tuned", "ppo-cleanrl"} and len(table) == 10
    assert table.fraction_sampled.between(0, 1.0001).all() and (tmp_path / "markets" / "markets.png").is_file()


def test_the_committed_suite_results_cover_what_the_readme_says():
    from pathlib import Path

    from societal.experiments.markets import TASKS

    root = Path(__file__).resolve().parents[1]
    table = pd.read_csv(root / "docs" / "markets" / "assessment.csv")
    readme = (root / "README.md").read_text()
    assert set(table.task) == {name for name, _, _ in TASKS}  # every task of the suite
    assert f"({len(table)} runs:" in readme
    for condition, runs in table.groupby("condition"):
        seeds = runs.seed.nunique()
        assert len(runs) == len(TASKS) * seeds == len(runs.drop_duplicates(["task", "seed"]))  # a whole grid
        assert f"`{condition}` on {len(TASKS)} tasks × {seeds} seed{'s' if seeds > 1 else ''}" in readme
