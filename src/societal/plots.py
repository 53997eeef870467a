"""PNG plots of a run: the return curve, and each primitive's bids against Q* per state."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure


def plot_returns(metrics: pd.DataFrame, path: Path, title: str) -> None:
    fig, ax = figure(figsize=(7, 4))
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
    """Left: each bidder's mean bid per state over training, with Q* dashed. Right: final bids ± std vs Q*, the
    evaluation's winner outlined. States never visited in training are shaded and say so.

    With more than ``max_states`` states: final bids against Q*, and the mean |bid − Q*| over training.
    """
    if bids.empty:
        return
    bids = bids.assign(label=_labels(bids))
    states = sorted(bids.state.unique())
    if len(states) > max_states:
        return plot_bid_errors(bids, path, title)
    fig, axes = figure(len(states), 2, figsize=(10, 2.2 * len(states) + 0.6), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2]})
    final = bids[bids["update"] == bids["update"].max()]
    for row, s in zip(axes, states):
        at, end = bids[bids.state == s], final[final.state == s].sort_values("learner")
        for _, curve in at.groupby("learner"):
            line = row[0].plot(curve.env_steps, curve.mean_bid, lw=1.2, label=curve.label.iloc[0])[0]
            if curve.q_star.notna().all():
                row[0].axhline(curve.q_star.iloc[0], ls="--", lw=0.8, color=line.get_color())
        row[0].set(ylabel=f"state {s}\nmean bid", ylim=(-0.05, 1.05))
        x = range(len(end))
        bars = row[1].bar(x, end.mean_bid, yerr=end.std_bid, color=[f"C{i}" for i in x], alpha=0.7, label="bid ± std")
        winner = end.win_rate.to_numpy().argmax()
        if end.win_rate.iloc[winner] > 0:
            bars[winner].set(edgecolor="k", linewidth=2, label=f"wins {end.win_rate.iloc[winner]:.0%} (evaluation)")
        if end.q_star.notna().all():
            row[1].scatter(x, end.q_star, color="k", marker="_", s=300, label="Q*", zorder=3)
        row[1].set(ylim=(-0.05, 1.05), xticks=x)
        row[1].set_xticklabels(end.label, fontsize=7)
        row[1].legend(fontsize=6, loc="upper left")
        if "visits" in end and end.visits.iloc[0] == 0:
            for ax in row:
                ax.set_facecolor("0.92")
            row[1].text(0.5, 0.5, "never visited in training", transform=row[1].transAxes, ha="center")
    axes[0, 0].set_title(f"{title}: mean bids during training (dashed: Q*)")
    axes[0, 1].set_title("final bids vs Q*")
    axes[-1, 0].set_xlabel("env steps")
    if len(bids.learner.unique()) <= 8:
        axes[0, 0].legend(fontsize=7)
    _save(fig, path)


def _labels(bids: pd.DataFrame) -> pd.Series:
    """Each bidder by the name of its action (and learner, where a primitive has several)."""
    names = bids.action if "action" in bids else "primitive " + bids.primitive.astype(str)
    several = bids.learner.max() > bids.primitive.max()
    return names + " (learner " + bids.learner.astype(str) + ")" if several else names


def plot_bid_errors(bids: pd.DataFrame, path: Path, title: str) -> None:
    fig, (left, right) = figure(1, 2, figsize=(10, 4))
    final = bids[bids["update"] == bids["update"].max()]
    visited = final.visits > 0 if "visits" in final else pd.Series(True, index=final.index)
    top = final.index.isin(final.groupby("state").mean_bid.idxmax())
    for mask, style in (((visited & ~top), dict(color="C0", label="other bids")),
                        ((visited & top), dict(color="C3", label="top mean bid of its state")),
                        (~visited, dict(facecolors="none", edgecolors="0.5", label="state never visited"))):
        left.scatter(final.q_star[mask], final.mean_bid[mask], s=8, alpha=0.7, **style)
    low, high = final.q_star.min(), final.q_star.max()
    left.plot([low, high], [low, high], "k--", lw=0.8)
    left.set(xlabel="Q*", ylabel="final mean bid", title=f"{title}: every (state, bidder)")
    left.legend(fontsize=7)
    trained = bids[bids.visits > 0] if "visits" in bids else bids
    error = (trained.mean_bid - trained.q_star).abs().groupby(trained.env_steps).mean()
    right.plot(error.index, error.values, "o-", ms=3)
    right.set(xlabel="env steps", ylabel="mean |bid − Q*| (visited states)", title="bid error over training")
    _save(fig, path)


def figure(*grid: int, **kwargs) -> tuple[Figure, object]:
    """``(figure, axes)`` like ``pyplot.subplots``, without pyplot: the user's matplotlib backend stays as it is."""
    fig = Figure(figsize=kwargs.pop("figsize", None))
    return fig, fig.subplots(*grid, **kwargs)


def _save(fig: Figure, path: Path, dpi: int = 110) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
