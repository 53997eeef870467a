"""PNG plots of a run: the return curve, and each primitive's bids against Q* per state.

Every line, band and marker is named in the figure's legend, and legends sit outside the axes, where they cover
no data.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, ScalarFormatter

from societal.errors import WriteFailed


def plot_returns(metrics: pd.DataFrame, path: Path, title: str,
                 payable: tuple[float, float] | None = None) -> Figure:
    """Training: the mean return of the episodes that ended in each update, and their lowest to highest return.
    Evaluation: the mean ± std over its episodes, the bar clipped to ``payable`` (the least and the most one
    episode can pay, ``payable()``) where it is known: a return's spread is not symmetric near a bound."""
    fig, ax = figure(figsize=(7, 4.6), layout="constrained")
    train = metrics.dropna(subset=["return_mean"])
    if len(train):
        line = ax.plot(train.env_steps, train.return_mean, lw=1, label="training: mean return of the episodes "
                                                                       "that ended in each update")[0]
        if "return_min" in train:
            ax.fill_between(train.env_steps, train.return_min, train.return_max, alpha=0.15, lw=0,
                            color=line.get_color(), label="training: their lowest to highest return")
    ev = metrics.dropna(subset=["eval_return_mean"])
    mean, std = ev.eval_return_mean, ev.eval_return_std.fillna(0)
    low, high, label = mean - std, mean + std, "evaluation: mean ± std of its episodes' returns"
    if payable is not None:
        # the mean itself, logged in float32, may lie a rounding error beyond the bound
        low, high = np.minimum(low.clip(lower=payable[0]), mean), np.maximum(high.clip(upper=payable[1]), mean)
        label += f",\nthe bar clipped to [{payable[0]:.4g}, {payable[1]:.4g}], what one episode can pay"
    ax.errorbar(ev.env_steps, mean, yerr=[mean - low, high - mean], fmt="o-", ms=3, capsize=2, label=label)
    ax.set(xlabel="env steps", ylabel="return (undiscounted)", title=title)
    counts(ax.xaxis)
    fig.legend(loc="outside lower center", fontsize=8, ncols=1, frameon=False)
    _save(fig, path)
    return fig


def payable(env: gym.Env) -> tuple[float, float] | None:
    """The least and the most one episode of a finite task can pay: over every start, choice and outcome within its
    time limit. None for other tasks, and for tables without a time limit."""
    from societal.environments.tabular import TabularEnv, from_transition_table

    table = env.unwrapped if isinstance(env.unwrapped, TabularEnv) else from_transition_table(env)
    if table is None or table.horizon is None:
        return None
    possible, onward = table.prob > 0, ~table.terminal
    low = high = np.zeros(len(table.next_state))  # [S]: the least / most the steps left can pay
    for _ in range(table.horizon):
        low = np.where(possible, table.reward + onward * low[table.next_state], np.inf).min((1, 2))
        high = np.where(possible, table.reward + onward * high[table.next_state], -np.inf).max((1, 2))
    starts = table.start > 0
    return float(low[starts].min()), float(high[starts].max())


def plot_bids(bids: pd.DataFrame, path: Path, title: str, max_states: int = 12) -> Figure | None:
    """Left: each bidder's mean bid per state over training, its Q* dashed in its colour. Right: the final mean bids
    ± std against Q*, the bidder that wins most evaluation auctions outlined with its share. States never visited in
    training are shaded and say so.

    With more than ``max_states`` states: final bids against Q*, and the mean |bid − Q*| over training.
    """
    if bids.empty:
        return None
    bids = bids.assign(label=_labels(bids))
    states = sorted(bids.state.unique())
    if len(states) > max_states:
        return plot_bid_errors(bids, path, title)
    colour = {learner: f"C{i % 10}" for i, learner in enumerate(sorted(bids.learner.unique()))}
    fig, axes = figure(len(states), 2, figsize=(10, 2.2 * len(states) + 1.6), squeeze=False,
                       gridspec_kw={"width_ratios": [3, 2]}, layout="constrained")
    final = bids[bids["update"] == bids["update"].max()]
    q = bids.q_star.dropna()
    ylim = (min(0.0, q.min()) - 0.05, max(1.0, q.max()) + 0.05) if len(q) else (-0.05, 1.05)
    unvisited = False
    for row, s in zip(axes, states):
        end = final[final.state == s].sort_values("learner")
        bid_history(row[0], bids[bids.state == s], colour)
        final_bids(row[1], end, colour)
        never = "visits" in end and (end.visits == 0).all()
        row[0].set(ylabel=f"state {s}" + ("\nnever visited" if never else "") + "\nmean bid", ylim=ylim)
        row[1].set_ylim(ylim)
        if never:
            unvisited = True
            for ax in row:
                ax.set_facecolor("0.92")
    axes[0, 0].set_title(f"{title}: mean bids during training")
    axes[0, 1].set_title("final mean bids against Q*")
    for ax in axes[:-1, 0]:  # the same env steps in every row: named once, at the bottom
        ax.tick_params(labelbottom=False)
    axes[-1, 0].set_xlabel("env steps")
    counts(axes[-1, 0].xaxis)
    bidders = final.drop_duplicates("learner").sort_values("learner")
    shown = zip(bidders.label, bidders.learner.map(colour)) if len(bidders) <= 8 else ()
    fig.legend(handles=bid_legend(shown, unvisited), loc="outside lower center", ncols=2, fontsize=8,
               frameon=False)
    _save(fig, path)
    return fig


def bid_history(ax: Axes, at: pd.DataFrame, colour: dict) -> None:
    """Each bidder's mean bid in one state over training, its Q* dashed in the same colour."""
    for learner, curve in at.groupby("learner"):
        ax.plot(curve.env_steps, curve.mean_bid, lw=1.2, color=colour[learner])
        if curve.q_star.notna().all():
            ax.axhline(curve.q_star.iloc[0], ls="--", lw=0.8, color=colour[learner])


def final_bids(ax: Axes, end: pd.DataFrame, colour: dict) -> None:
    """The final mean bids in one state ± std, the whisker kept within the bids' range [0, 1], against Q*."""
    x = np.arange(len(end))
    mean, std = end.mean_bid.to_numpy(), end.std_bid.to_numpy()
    whisker = [mean - np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1) - mean]
    # grey whiskers: a black one ending at Q* would hide Q*'s black tick
    bars = ax.bar(x, mean, yerr=whisker, color=end.learner.map(colour), alpha=0.7, error_kw={"ecolor": "0.5"})
    names = end.label.tolist()
    crowded = len(end) > 4  # long names side by side would run together: tilted
    winner = end.win_rate.to_numpy().argmax()
    if end.win_rate.iloc[winner] > 0:  # its share goes under its name: text on a narrow bar would cover the next
        bars[winner].set(edgecolor="k", linewidth=2)
        names[winner] += (" " if crowded else "\n") + f"(wins {end.win_rate.iloc[winner]:.0%})"
    if end.q_star.notna().all():
        ax.scatter(x, end.q_star, color="k", marker="_", s=min(300, 2400 / len(end)), zorder=3)
    ax.set_xticks(x, names, fontsize=7, rotation=30 if crowded else 0, ha="right" if crowded else "center")


def bid_legend(bidders: Iterable[tuple[str, str]], unvisited: bool) -> list:
    """What each line, bar and marker of ``plot_bids`` means; ``bidders``: (label, colour) of each bidder."""
    handles = [Line2D([], [], color=c, lw=1.2, label=label) for label, c in bidders]
    handles += [Line2D([], [], color="0.3", ls="--", lw=0.8, label="Q* of the bidder's action (left, in its colour)"),
                Patch(facecolor="0.6", alpha=0.7, label="final mean bid ± its std, within [0, 1] (bar, whisker)"),
                Line2D([], [], color="k", marker="_", ms=14, ls="", label="Q* of the bidder's action (right)"),
                Patch(facecolor="none", edgecolor="k", lw=2,
                      label="wins most evaluation auctions (its share under its name)")]
    if unvisited:
        handles.append(Patch(facecolor="0.92", edgecolor="0.8",
                             label="state never visited in training: untrained bids"))
    return handles


def _labels(bids: pd.DataFrame) -> pd.Series:
    """Each bidder by the name of its action (and learner, where a primitive has several)."""
    names = bids.action if "action" in bids else "primitive " + bids.primitive.astype(str)
    several = bids.learner.max() > bids.primitive.max()
    return names + " (learner " + bids.learner.astype(str) + ")" if several else names


def plot_bid_errors(bids: pd.DataFrame, path: Path, title: str) -> Figure:
    fig, (left, right) = figure(1, 2, figsize=(10, 4.4), layout="constrained")
    final = bids[bids["update"] == bids["update"].max()]
    visited = final.visits > 0 if "visits" in final else pd.Series(True, index=final.index)
    top = final.index.isin(final.groupby("state").mean_bid.idxmax())
    for mask, style in (((visited & ~top), dict(color="C0", label="other bids")),
                        ((visited & top), dict(color="C3", label="top mean bid of its state")),
                        (~visited, dict(facecolors="none", edgecolors="0.5", label="state never visited"))):
        left.scatter(final.q_star[mask], final.mean_bid[mask], s=8, alpha=0.7, **style)
    low, high = final.q_star.min(), final.q_star.max()
    left.plot([low, high], [low, high], "k--", lw=0.8, label="bid = Q*")
    left.set(xlabel="Q*", ylabel="final mean bid", title=f"{title}: every (state, bidder)")
    trained = bids[bids.visits > 0] if "visits" in bids else bids
    error = (trained.mean_bid - trained.q_star).abs().groupby(trained.env_steps).mean()
    right.plot(error.index, error.values, "o-", ms=3)
    right.set(xlabel="env steps", ylabel="mean |bid − Q*| (visited states)", title="bid error over training")
    counts(right.xaxis)
    fig.legend(handles=left.get_legend_handles_labels()[0], loc="outside lower center", ncols=4, fontsize=8,
               frameon=False)
    _save(fig, path)
    return fig


def counts(axis: Axis) -> None:
    """Tick labels such as 250k and 1.2M: a count written out (10000000) runs into its neighbours, and an offset or
    exponent in the axis's corner (1e7) is easily missed."""
    axis.set_major_formatter(FuncFormatter(_count))


def _count(x: float, _pos: int | None = None) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.4g}{unit}"
    return f"{x:.4g}"


def figure(*grid: int, **kwargs) -> tuple[Figure, object]:
    """``(figure, axes)`` like ``pyplot.subplots``, without pyplot: the user's matplotlib backend stays as it is.
    ``layout="constrained"`` makes room for a legend placed outside the axes (``loc="outside …"``)."""
    fig = Figure(figsize=kwargs.pop("figsize", None), layout=kwargs.pop("layout", None))
    return fig, fig.subplots(*grid, **kwargs)


def _save(fig: Figure, path: Path, dpi: int = 110) -> None:
    for ax in fig.axes:  # no offset (+3.1e-1) in an axis's corner: it is easily missed and collides with titles
        for axis in (ax.xaxis, ax.yaxis):
            if isinstance(formatter := axis.get_major_formatter(), ScalarFormatter):
                formatter.set_useOffset(False)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    try:
        fig.savefig(path, dpi=dpi)
    except OSError as e:  # a full disk, a folder where the file goes: one line, as for every other file
        raise WriteFailed(f"cannot write {path}: {e.strerror or e}") from None
