"""The control preset: the default on tasks of feature vectors without a table, and it learning CartPole."""

import warnings

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch

import societal
from societal.config import from_preset
from societal.errors import SocietalWarning
from societal.society import Society


def test_tasks_of_feature_vectors_without_a_table_default_to_the_control_preset():
    presets = {env: from_preset(None, env).preset for env in
               ("CartPole-v1", "Acrobot-v1", "FrozenLake-v1", "societal/RandomMDP-v0", "societal/Chain-v0")}
    assert presets == {"CartPole-v1": "control", "Acrobot-v1": "control", "FrozenLake-v1": "general",
                       "societal/RandomMDP-v0": "general", "societal/Chain-v0": "paper"}
    control = from_preset(None, "CartPole-v1")
    assert control.auto_scale and control.absorbing_shift and control.hidden == (32, 32) and control.epochs == 8
    assert control.price == "mean" and from_preset(None, "MinAtar/Breakout-v1").network == "minatar_cnn"
    assert not from_preset(None, "societal/Chain-v0").auto_scale


def test_the_control_preset_learns_cartpole(tmp_path):
    run = societal.train("CartPole-v1", out=tmp_path / "run", steps=150_000, eval_episodes=20, progress=False)
    evaluations = pd.read_csv(run.path / "metrics.csv")["eval_return_mean"].dropna()
    assert evaluations.iloc[0] < 15 and evaluations.iloc[-1] > 40  # random actions last ≈ 22 steps


def test_bidder_relu_makes_the_bidders_of_one_layer_nonlinear():
    x = torch.randn(2, 100, 4)
    midpoint = torch.cat([x[0], x[1], (x[0] + x[1]) / 2])
    for relu in (False, True):
        torch.manual_seed(0)
        society = Society((4,), 2, hidden=(16,), relu_features=relu)
        with torch.no_grad():
            society.theta.normal_(0.0, 0.3)
        alpha, beta = society.distribution(midpoint)
        logit = (alpha / beta).log().view(2, 3, 100)  # logit of the mean bid
        error = (logit[:, 2] - (logit[:, 0] + logit[:, 1]) / 2).abs().max().item()
        assert (error > 0.05) if relu else (error < 1e-4)  # the paper's bidder: affine in the observation
        assert society.spec.get("relu_features", False) == relu  # absent when off: earlier specs stay equal


class Reach(gym.Env):
    """A point on a line steps left or right by 0.1 from near 0; the right end (x ≥ 1) pays 1 and ends the episode,
    the left end ends it for nothing, and every step costs 0.01: a task of no suite, with a continuous observation
    and rewards of both signs."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.np_random.uniform(-0.2, 0.2)
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x += 0.1 if action == 1 else -0.1
        won, lost = self.x >= 1, self.x <= -1
        return np.array([np.clip(self.x, -1, 1)], np.float32), float(won) - 0.01, bool(won or lost), False, {}


@pytest.fixture
def reach():
    gym.register("test/Reach-v0", entry_point=Reach, max_episode_steps=50)
    yield "test/Reach-v0"
    del gym.registry["test/Reach-v0"]


def test_a_task_of_no_suite_learns_with_the_default_settings(reach, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SocietalWarning)  # neither a scale warning nor "did not learn"
        run = societal.train(reach, out=tmp_path / "run", steps=100_000, eval_episodes=50, progress=False)
    assert run.config.preset == "control" and run.config.reward_shift > 0  # step costs lifted into the bids
    evaluations = run.metrics.eval_return_mean.dropna()
    assert evaluations.iloc[-1] > 0.85  # 9 to 12 steps right: 0.88 to 0.91; random steps: below 0.3


def test_a_run_that_does_not_learn_says_so(tmp_path):
    with pytest.warns(SocietalWarning, match=r"the last among them, were no better than random choices \(2\d\.\d"):
        societal.train("CartPole-v1", preset="general_mlp", auto_scale=False, out=tmp_path / "run", steps=60_000,
                       eval_episodes=20, progress=False)  # bids cannot price returns of 0–100: shortest episodes
