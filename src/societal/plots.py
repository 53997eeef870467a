"""PNG plots of a run: the return curve, and each primitive's bids against Q* per state."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd


def plot_returns(metrics: pd.DataFrame, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    train = metrics.dropna(subset=["return_mean"])
    if len(train):
        ax.plot(train.env_steps, train.return_mean, lw=1, label="training episodes")
        if "return_min" in train:
            ax.fill_between(train.env_steps, train.return_min, train.return_max, alpha=0.15, lw=0)
    ev = metrics.dropna(subset=["eval_return_mean"])
    ax.errorbar(ev.env_steps, ev.eval_return_mean, yerr=ev.eval_return_std, fmt="o-", ms=3, label="evaluation")
    ax.set(xlabel="env steps", ylabel="return (undiscounted)", title=title)
    ax.legend()
    _save(fig, path)


def plot_bids(bids: pd.DataFrame, path: Path, title: str, max_states: int = 12) -> None:
    """Left: each learner's mean bid per state over training, with Q* dashed. Right: final bids ± std vs Q*.

    With more than ``max_states`` states: final bids against Q*, and the mean |bid − Q*| over training.
    """
    if bids.empty:
        return
    states = sorted(bids.state.unique())
    if len(states) > max_states:
        return plot_bid_errors(bids, path, title)
    fig, axes = plt.subplots(len(states), 2, figsize=(10, 2.2 * len(states) + 0.6), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2]})
    final = bids[bids["update"] == bids["update"].max()]
    for row, s in zip(axes, states):
        at = bids[bids.state == s]
        for k, curve in at.groupby("learner"):
            line = row[0].plot(curve.env_steps, curve.mean_bid, lw=1.2, label=f"learner {k}")[0]
            if curve.q_star.notna().all():
                row[0].axhline(curve.q_star.iloc[0], ls="--", lw=0.8, color=line.get_color())
        row[0].set(ylabel=f"state {s}\nmean bid", ylim=(-0.05, 1.05))
        end = final[final.state == s]
        row[1].bar(end.learner, end.mean_bid, yerr=end.std_bid, color="C0", alpha=0.7, label="bid ± std")
        if end.q_star.notna().all():
            row[1].scatter(end.learner, end.q_star, color="k", marker="_", s=300, label="Q*", zorder=3)
        row[1].set(ylim=(-0.05, 1.05), xticks=end.learner)
    axes[0, 0].set_title(f"{title}: mean bids during training (dashed: Q*)")
    axes[0, 1].set_title("final bids vs Q*")
    axes[0, 1].legend(fontsize=7)
    axes[-1, 0].set_xlabel("env steps")
    axes[-1, 1].set_xlabel("learner (primitive = learner mod P)")
    if len(bids.learner.unique()) <= 8:
        axes[0, 0].legend(fontsize=7)
    _save(fig, path)


def plot_bid_errors(bids: pd.DataFrame, path: Path, title: str) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    final = bids[bids["update"] == bids["update"].max()]
    left.scatter(final.q_star, final.mean_bid, s=6, alpha=0.6)
    low, high = final.q_star.min(), final.q_star.max()
    left.plot([low, high], [low, high], "k--", lw=0.8)
    left.set(xlabel="Q*", ylabel="final mean bid", title=f"{title}: every (state, learner)")
    error = (bids.mean_bid - bids.q_star).abs().groupby(bids.env_steps).mean()
    right.plot(error.index, error.values, "o-", ms=3)
    right.set(xlabel="env steps", ylabel="mean |bid − Q*|", title="bid error over training")
    _save(fig, path)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
