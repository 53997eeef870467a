"""The control preset: the default on tasks of feature vectors without a table, and it learning CartPole."""

import pandas as pd
import torch

import societal
from societal.config import from_preset
from societal.society import Society


def test_tasks_of_feature_vectors_without_a_table_default_to_the_control_preset():
    presets = {env: from_preset(None, env).preset for env in
               ("CartPole-v1", "Acrobot-v1", "FrozenLake-v1", "societal/RandomMDP-v0", "societal/Chain-v0")}
    assert presets == {"CartPole-v1": "control", "Acrobot-v1": "control", "FrozenLake-v1": "general",
                       "societal/RandomMDP-v0": "general", "societal/Chain-v0": "paper"}
    control = from_preset(None, "CartPole-v1")
    assert control.auto_scale and control.hidden == (32, 32) and control.price == "mean"
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
