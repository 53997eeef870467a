"""A run's plots and the report's curves: every line, band and marker named in a legend that covers no panel,
evaluation bars within what a task can pay, step counts readable."""

import math

import pandas as pd
import pytest

import societal
from societal.environments.vector import make
from societal.experiments.report import draw_conditions
from societal.plots import _count, figure, payable, plot_bids, plot_returns


@pytest.mark.parametrize("env,kwargs,bounds", [
    ("societal/Chain-v0", {}, (0.0, 0.8)),  # 0.8 for reaching the end, else nothing
    ("societal/Bandit-v0", {"arms": 4}, (0.2, 0.8)),
    ("Taxi-v4", {}, (-2000.0, 15.0)),  # 200 illegal drop-offs; 4 moves, a pick-up, the drop-off
    ("CartPole-v1", {}, None),  # no table: not known
])
def test_what_one_episode_can_pay_comes_from_the_table(env, kwargs, bounds):
    assert payable(make(env, **kwargs)) == (None if bounds is None else pytest.approx(bounds))


def test_step_counts_read_as_k_and_m():
    assert [_count(x) for x in (0, 500, 250_000, 1_200_000, 12_500_000)] == ["0", "500", "250k", "1.2M", "12.5M"]


def test_the_evaluation_bar_stays_within_what_an_episode_can_pay(tmp_path):
    nan = math.nan
    metrics = pd.DataFrame({"env_steps": [0, 1000, 2000], "return_mean": [nan, 0.4, 0.5],
                            "return_min": [nan, 0.0, 0.0], "return_max": [nan, 0.8, 0.8],
                            "eval_return_mean": [0.3, nan, 0.6], "eval_return_std": [0.4, nan, 0.4]})
    fig = plot_returns(metrics, tmp_path / "returns.png", "task", (0.0, 0.8))
    bar = next(c for c in fig.axes[0].containers if c.has_yerr)
    ends = [y for segment in bar.lines[2][0].get_segments() for _, y in segment]
    assert min(ends) == pytest.approx(0.0) and max(ends) == pytest.approx(0.8)  # not -0.1 and 1.0
    labels = " | ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert "training: their lowest to highest return" in labels and "clipped to [0, 0.8]" in labels
    assert (tmp_path / "returns.png").is_file()


def test_the_bid_legend_covers_no_panel_and_never_visited_states_say_so(tmp_path):
    run = societal.train("societal/Chain-v0", steps=1, eval_episodes=2, out=tmp_path / "run", progress=False)
    fig = plot_bids(run.bids, tmp_path / "bids.png", "Chain")
    legend = fig.legends[0].get_window_extent()
    assert not any(legend.overlaps(ax.get_window_extent()) for ax in fig.axes)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"Left", "Right", "Q* of the bidder's action (right)"} <= set(labels)
    assert "state never visited in training: untrained bids" in labels  # the last state: one update visits few
    assert any("never visited" in ax.get_ylabel() for ax in fig.axes)
    assert not any(text.get_text() == "never visited in training" for ax in fig.axes for text in ax.texts)


def test_curves_over_seeds_name_the_band_and_count_seeds_in_words():
    evals = [pd.DataFrame({"env_steps": [0, 1000], "wall_s": [0.0, 1.0], "eval_return_mean": [0.1, v]})
             for v in (0.2, 0.4)]
    _, axes = figure(1, 2, squeeze=False)
    draw_conditions(axes[0], {"alone": evals[:1], "pair": evals}, ("env_steps", "wall_s"), "task")
    labels = [t.get_text() for t in axes[0, -1].get_legend().get_texts()]
    assert labels == ["alone (1 seed)", "pair: median of 2 seeds", "shaded: 10th to 90th percentile over seeds"]


def test_a_trained_finite_task_draws_its_evaluation_within_what_an_episode_can_pay(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr("societal.learning.loop.plot_returns",
                        lambda metrics, path, title, payable=None: seen.append(payable))
    societal.train("societal/Chain-v0", steps=1, eval_episodes=2, out=tmp_path / "run", progress=False)
    assert seen[0] == pytest.approx((0.0, 0.8))
