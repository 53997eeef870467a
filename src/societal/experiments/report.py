"""Summaries of an experiment's run folders: what the paper's claims are checked against."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from societal.errors import SocietalError
from societal.experiments.runs import band, evaluations, read_runs

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# The evaluation return that counts as solved (bandit: the best arm wins ≥ 95% of evaluation episodes,
# 0.95 · 0.8 + 0.05 · 0.6 ≥ 0.79)
TARGET = {"bandit": 0.79, "chain": 0.8, "duality": 4.5, "mental-rotation": 0.9}
BID_ERROR_AT = (2_000_000, 10_000_000)  # env steps at which mean |bid − Q*| is reported
AXIS = {"env_steps": "env steps", "auction_steps": "auction steps", "wall_s": "wall-clock seconds"}


def bids_at(bids: pd.DataFrame, env_steps: float) -> pd.DataFrame:
    """The bids of the evaluation nearest to ``env_steps``."""
    steps = bids.env_steps.unique()
    return bids[bids.env_steps == min(steps, key=lambda s: abs(s - env_steps))]


def summarize_run(folder: Path, metrics: pd.DataFrame, target: float) -> dict:
    bids = pd.read_csv(folder / "bids.csv")
    if "visits" in bids:  # states never visited in training have untrained bids
        bids = bids[bids.visits > 0]
    ev = metrics.dropna(subset=["eval_return_mean"])
    solved = ev[ev.eval_return_mean >= target - 1e-6]
    row = {
        "run": f"{folder.parent.name}/{folder.name}",
        "env_steps": int(metrics.env_steps.iloc[-1]),
        "wall_s": round(float(metrics.wall_s.iloc[-1])),
        "eval_return": round(float(ev.eval_return_mean.iloc[-1]), 4),
        "steps_to_target": int(solved.env_steps.iloc[0]) if len(solved) else None,
        "wall_s_to_target": round(float(solved.wall_s.iloc[0])) if len(solved) else None,
    }
    if bids.empty:
        return row
    final = bids[bids["update"] == bids["update"].max()]
    winners = final.loc[final.groupby("state").mean_bid.idxmax()]
    row["winner_per_state"] = " ".join(f"{s}:{p}" for s, p in zip(winners.state, winners.primitive))
    row["winner_bid_per_state"] = " ".join(f"{v:.3f}" for v in winners.mean_bid)
    row["winner_win_rate"] = " ".join(f"{v:.2f}" for v in winners.win_rate)
    row["bids_per_state"] = " ".join(
        f"{s}:" + "/".join(f"{v:.3f}" for v in g.sort_values("learner").mean_bid) for s, g in final.groupby("state"))
    if final.q_star.between(0, 1).all():  # Q* within the bid range: bids can be compared with it
        row["q_star_of_winner"] = " ".join(f"{v:.3f}" for v in winners.q_star)
        for at in BID_ERROR_AT:
            if metrics.env_steps.iloc[-1] >= at * 0.95:
                b = bids_at(bids, at)
                best = b.loc[b.groupby("state").q_star.idxmax()]  # the optimal primitive of each state
                tag = f"{at / 1e6:g}M"
                row[f"abs_err_all@{tag}"] = round(float((b.mean_bid - b.q_star).abs().mean()), 4)
                row[f"abs_err_optimal@{tag}"] = round(float((best.mean_bid - best.q_star).abs().mean()), 4)
    return row


def summarize(name: str, root: Path) -> pd.DataFrame:
    """One row per run folder of experiment ``name`` under ``root``; also draws ``<root>/<name>/*.png``."""
    if name == "tworooms":
        return summarize_tworooms(root)
    if name == "markets":
        from societal.experiments import markets

        return markets.summarize(root)
    if name.startswith("modularity"):
        from societal.experiments import followup, modularity

        return modularity.summarize(root, followup.families(name))
    runs = read_runs(root / name)
    if not runs:
        raise SocietalError(f"no runs of {name!r} under {root / name}; run them with --for-real first")
    plot_conditions(evaluations(runs), ("env_steps", "wall_s"), name, root / name / "returns.png")
    return pd.DataFrame([summarize_run(f, m, TARGET[name]) for f, m in runs.items()])


def summarize_folder(folder: Path) -> tuple[pd.DataFrame, Path | None]:
    """Every run at or under ``folder`` (``find_runs``: one run, a folder of runs, a sweep's ``<setting>/seed<k>``,
    an experiment's root): a row per run, then per setting of two or more seeds the median and 10–90 % band over
    seeds of the final evaluation. Draws ``<folder>/returns.png`` (not for a single run, whose plots/ has its
    curves); returns the table and the plot's path."""
    runs = find_runs(folder)
    rows = [run_row(folder, run, metrics) for run, metrics in runs.items()]
    table = pd.DataFrame(rows).astype(dict.fromkeys(("env_steps", "wall_s", "eval_return", "best_eval_return"), float))
    table = pd.concat([table.drop(columns="setting"), medians(table)], ignore_index=True).round({"wall_s": 0}).round(4)
    # counts print as whole numbers beside the median rows' blanks; a column no row fills is left out
    table = table.astype({"env_steps": "Int64", "wall_s": "Int64"}).dropna(axis=1, how="all")
    if list(runs) == [folder]:
        return table, None
    curves: dict[str | None, dict[str, list[pd.DataFrame]]] = {}  # task → setting → its seeds' evaluations
    for row, metrics in zip(rows, runs.values()):
        if len(ev := metrics.dropna(subset=["eval_return_mean"])):
            curves.setdefault(row["env"], {}).setdefault(row["setting"], []).append(ev)
    if not curves:
        return table, None
    plot_envs(curves, folder / "returns.png")
    return table, folder / "returns.png"


def medians(table: pd.DataFrame) -> pd.DataFrame:
    """Per setting of two seeds or more: the median and 10–90 % band over seeds of the final evaluation."""
    final = table.dropna(subset=["eval_return"]).groupby("setting", sort=False).eval_return
    seeds = final.size()
    rows = pd.DataFrame({"run": [f"{setting}/median of {n} seeds" for setting, n in seeds.items()],
                         "eval_return": final.median().to_numpy(), "eval_return_10%": final.quantile(0.1).to_numpy(),
                         "eval_return_90%": final.quantile(0.9).to_numpy()})
    return rows[seeds.to_numpy() > 1]


def find_runs(folder: Path) -> dict[Path, pd.DataFrame]:
    """The metrics of every run folder (one that holds metrics.csv) at or under ``folder``; hidden folders (a
    sweep's .tune) and a run's own subfolders are not searched."""
    if not folder.is_dir():
        raise SocietalError(f"no runs under {folder}: it is not a folder")
    found = []
    for parent, subfolders, files in os.walk(folder):
        if "metrics.csv" in files:
            found.append(Path(parent))
            subfolders.clear()
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
    if not found:
        raise SocietalError(f"no runs under {folder}: no folder there holds a metrics.csv (train one with "
                            "societal train --out DIR)")
    return {run: read_metrics(run / "metrics.csv") for run in found}


def read_metrics(path: Path) -> pd.DataFrame:
    """A run's metrics.csv, or one clear error naming the file."""
    try:
        metrics = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise SocietalError(f"cannot read {path}: it is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise SocietalError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
    missing = [c for c in ("env_steps", "wall_s", "eval_return_mean") if c not in metrics]
    if missing:
        raise SocietalError(f"{path} is not a run's metrics.csv: it has no column {', '.join(missing)}")
    try:
        return metrics.astype({"env_steps": float, "wall_s": float, "eval_return_mean": float})
    except ValueError as e:
        raise SocietalError(f"{path} is not a run's metrics.csv: {e}") from None


def setting_of(folder: Path, run: Path) -> str:
    """The folder above ``seed<k>`` (the seeds of a setting are summarised together), else the run itself; named by
    its path below ``folder``."""
    grouped = run.parent if re.fullmatch(r"seed\d+", run.name) and run != folder else run
    return str(grouped.relative_to(folder)) if grouped != folder else folder.name


def run_row(folder: Path, run: Path, metrics: pd.DataFrame) -> dict:
    ev = metrics.dropna(subset=["eval_return_mean"])
    last = metrics.iloc[-1] if len(metrics) else None  # a run that has only begun has no rows yet
    return {"run": str(run.relative_to(folder)) if run != folder else folder.name, "setting": setting_of(folder, run),
            "env": env_of(run), "env_steps": None if last is None else last.env_steps,
            "wall_s": None if last is None else last.wall_s,
            "eval_return": ev.eval_return_mean.iloc[-1] if len(ev) else None,
            "best_eval_return": ev.eval_return_mean.max() if len(ev) else None}


def env_of(run: Path) -> str | None:
    """The task of a run, from its config.json (None where it cannot be read: the report goes on without it)."""
    try:
        return json.loads((run / "config.json").read_text()).get("env")
    except (OSError, ValueError, AttributeError):
        return None


def formatted(table: pd.DataFrame) -> str:
    """The table as text: whole numbers as such, blanks where a row has no value."""
    return table.astype(object).where(table.notna(), "").to_string(index=False)


def plot_envs(curves: dict[str | None, dict[str, list[pd.DataFrame]]], path: Path) -> None:
    """A row of panels per task (returns of different tasks do not share an axis): ``draw_conditions``."""
    from societal.plots import _save, figure

    fig, axes = figure(len(curves), 2, figsize=(11, 3.6 * len(curves) + 0.6), squeeze=False, layout="constrained")
    for row, (env, conditions) in zip(axes, curves.items()):
        draw_conditions(row, conditions, ("env_steps", "wall_s"), env or path.parent.name)
    _save(fig, path)


def plot_conditions(curves: dict[str, list[pd.DataFrame]], xs: tuple[str, ...], title: str, path: Path,
                    xlim: dict[str, float] | None = None) -> None:
    """Evaluation return of each condition (its seeds' ``evaluations``) against each of ``xs``
    (``draw_conditions``); ``xlim`` caps an axis."""
    from societal.plots import _save, figure

    fig, axes = figure(1, len(xs), figsize=(5.5 * len(xs), 4.4), squeeze=False, layout="constrained")
    draw_conditions(axes[0], curves, xs, title)
    for ax, x in zip(axes[0], xs):
        if x in (xlim or {}):
            ax.set_xlim(0, xlim[x])
    _save(fig, path)


def draw_conditions(axes: Sequence[Axes], curves: dict[str, list[pd.DataFrame]], xs: tuple[str, ...],
                    title: str) -> None:
    """On each of ``axes`` the evaluation return of each condition against one of ``xs``: the median over seeds
    and, with two seeds or more, their 10–90 % band (``band``); one legend, beside the row, names them."""
    from matplotlib.patches import Patch

    from societal.plots import counts

    for condition, evals in curves.items():
        for ax, x in zip(axes, xs):
            grid, low, mid, high = band(evals, x)
            label = f"{condition}: median of {len(evals)} seeds" if len(evals) > 1 else f"{condition} (1 seed)"
            line = ax.plot(grid, mid, label=label)[0]
            if len(evals) > 1:
                ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2, lw=0)
    for ax, x in zip(axes, xs):
        ax.set(xlabel=AXIS.get(x, x), ylabel="evaluation return", title=title)
        if x != "wall_s":
            counts(ax.xaxis)
    handles = axes[0].get_legend_handles_labels()[0]
    if any(len(evals) > 1 for evals in curves.values()):
        handles.append(Patch(facecolor="0.5", alpha=0.2, label="shaded: 10th to 90th percentile over seeds"))
    axes[-1].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)


def tworooms_target(condition: str) -> tuple[str, float]:
    """The measure and the level the issue asks of each TwoRooms stage."""
    if condition.startswith("option"):
        return "eval_success_rate", 0.9
    return "eval_return_mean", 0.65 if condition.startswith("green") else 0.55


def summarize_tworooms(root: Path) -> pd.DataFrame:
    rows, runs = [], read_runs(root / "tworooms")
    for folder, metrics in runs.items():
        ev = metrics.dropna(subset=["eval_return_mean"])
        if ev.empty:  # a run that is just starting
            continue
        measure, level = tworooms_target(folder.parent.name)
        hit = ev[ev[measure] >= level]
        rows.append({
            "run": f"{folder.parent.name}/{folder.name}", "env_steps": int(metrics.env_steps.iloc[-1]),
            "auction_steps": int(metrics.auction_steps.iloc[-1]), "wall_s": round(float(metrics.wall_s.iloc[-1])),
            "eval_return": round(float(ev.eval_return_mean.iloc[-1]), 3),
            "best_eval_return": round(float(ev.eval_return_mean.max()), 3),
            "success_rate": round(float(ev.eval_success_rate.iloc[-1]), 3), "target": f"{measure[5:]} >= {level}",
            "auction_steps_to_target": int(hit.auction_steps.iloc[0]) if len(hit) else None,
            "env_steps_to_target": int(hit.env_steps.iloc[0]) if len(hit) else None,
        })
    if not rows:
        raise SocietalError(f"no runs of 'tworooms' under {root / 'tworooms'}; run them with --for-real first")
    curves = evaluations(runs)
    rows += [median_row(c, evals) for c, evals in sorted(curves.items()) if len(evals) > 1]
    plot_tworooms(root / "tworooms", curves)
    table = pd.DataFrame(rows)
    counts = ["env_steps", "auction_steps", "wall_s", "auction_steps_to_target", "env_steps_to_target"]
    return table.astype(dict.fromkeys(counts, "Int64"))  # counts stay integers beside the median rows' blanks


def median_row(condition: str, evals: list[pd.DataFrame]) -> dict:
    """The median over seeds at each evaluation that every seed made (the paper's curves are medians)."""
    import numpy as np

    measure, level = tworooms_target(condition)
    steps = sorted(set.intersection(*(set(e.auction_steps) for e in evals)))
    median = {c: np.median([e.set_index("auction_steps").loc[steps, c] for e in evals], axis=0)
              for c in (measure, "eval_return_mean")}
    hit = [n for n, m in zip(steps, median[measure]) if m >= level]
    return {"run": f"{condition}/median of {len(evals)} seeds", "target": f"{measure[5:]} >= {level}",
            "eval_return": round(float(median["eval_return_mean"][-1]), 3),
            "auction_steps_to_target": int(hit[0]) if hit else None}


def plot_tworooms(folder: Path, curves: dict[str, list[pd.DataFrame]]) -> None:
    """Median and 10–90 % band over seeds of each condition (``curves``: its seeds' ``evaluations``), against
    env steps and auction steps, and the histogram of per-weight change during transfer (the paper's §7.3 histogram)."""
    import numpy as np
    import torch

    from societal.plots import _save, figure

    for task in ("green", "blue"):
        stage = {c: evals for c, evals in curves.items() if c.startswith(f"{task}-")}
        # the auction-step view spans the runs over options (flat PPO's 2 M would squash them)
        over_options = [min(e.auction_steps.max() for e in evals) for c, evals in stage.items()
                        if not c.endswith("flat")]
        plot_conditions(stage, ("env_steps", "auction_steps"), f"{task.capitalize()}TwoRooms",
                        folder / f"{task}.png", {"auction_steps": max(over_options)} if over_options else None)

    fig, ax = figure(figsize=(6, 4))
    for condition in ("society", "hierarchical"):
        changes = []
        for run in (p.parent.parent for p in folder.glob(f"blue-{condition}/seed*/checkpoints/last.pt")):
            parent = json.loads((run / "config.json").read_text())["init_from"]
            before = torch.load(Path(parent) / "checkpoints" / "best.pt", weights_only=True)["agent"]["theta"]
            after = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["agent"]["theta"]
            changes.append((after - before).abs().flatten())
        if changes:
            change = torch.cat(changes).numpy()
            ax.hist(change, bins=np.arange(0, 0.04, 0.001), weights=np.full(len(change), 100 / len(change)),
                    alpha=0.6, label=f"{condition}: {100 * (change < 0.001).mean():.0f}% below 0.001")
    ax.set(xlabel="|Δw| during transfer", ylabel="% of weights", title="How weights changed during transfer")
    ax.legend(fontsize=8)
    _save(fig, folder / "transfer_weight_change.png")


def mental_rotation_oracle(mnist_dir: str | None = None, batch: int = 1000) -> dict[str, float]:
    """Classifier accuracy on the test digits: centred, distorted, and after the scripted inverses, in the
    right order (undo the translation, then the rotation) and in the wrong order."""
    import torch

    from societal.environments.mental_rotation import distort, transform
    from societal.environments.mnist_classifier import canvas, load_classifier
    from societal.environments.mnist_data import load_mnist

    data, classifier = load_mnist(mnist_dir), load_classifier(mnist_dir=mnist_dir)
    hits = dict.fromkeys(("centred", "distorted", "right_order", "wrong_order"), 0)
    with torch.no_grad():
        for start in range(0, len(data.y_test), batch):
            images = canvas(data.x_test[start : start + batch])
            labels = torch.tensor(data.y_test[start : start + batch])
            d = torch.arange(len(labels)) % 8  # every distortion equally often
            distorted = distort(images, d)
            undo_rotation, undo_translation = 1 - d // 4, 2 + ((d % 4) ^ 1)
            for key, x in (("centred", images), ("distorted", distorted),
                           ("right_order", transform(transform(distorted, undo_translation), undo_rotation)),
                           ("wrong_order", transform(transform(distorted, undo_rotation), undo_translation))):
                hits[key] += int((classifier(x).argmax(1) == labels).sum())
    return {k: v / len(data.y_test) for k, v in hits.items()}
