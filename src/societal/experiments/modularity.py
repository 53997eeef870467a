"""What the follow-up's modularity benchmark (``societal.experiments.followup``) shows.

The follow-up's finding to check: the society's updates touch only the primitives whose decisions the change
concerns, and it transfers faster than PPO. ``summarize`` measures both: env steps until the evaluation return
is optimal after the change (transfer and from scratch), and how much each primitive's weights moved.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from societal.errors import SocietalError
from societal.experiments.followup import AGENTS, FAMILIES
from societal.experiments.runs import band, evaluations, read_runs

OPTIMUM = 0.8 * 0.975  # every task pays 0.8 once; optimal when ≥ 97.5 % of evaluation episodes collect it
CHANGED = 1e-3  # a weight "changed" during transfer if it moved by more than this


@functools.cache  # asked once per transfer run: the same pairs for every seed and agent
def concerned(before: str, after: str) -> list[int]:
    """The primitives whose decisions the change from task ``before`` to ``after`` concerns: the best action at an
    observation on the optimal path of either task differs (Q* with γ = 0.99)."""
    from societal.environments import finite_mdp, value_iteration
    from societal.environments.mdp import visited_by
    from societal.environments.vector import make

    def best(task: str) -> set[tuple[bytes, int]]:
        env = make(f"societal/{task}-v0").unwrapped
        mdp = finite_mdp(env)
        q = value_iteration(mdp, 0.99)
        seen = env.features if env.features is not None else np.eye(len(q))
        path = visited_by(mdp, np.eye(q.shape[1])[q.argmax(1)])
        return {(seen[s].tobytes(), int(q[s].argmax())) for s in np.flatnonzero(path)}

    return sorted({a for _, a in best(before) ^ best(after)})


def weight_change(run: Path) -> dict[str, tuple[float, float]]:
    """Per primitive (and shared part), the mean |Δw| of its policy weights and the % that moved by more than
    ``CHANGED``, from the pretrained weights the transfer started from to its last ones."""
    from societal.modularity import changed, policy_parts
    from societal.run import load

    config = json.loads((run / "config.json").read_text())
    before, after = load(config["init_from"], "best").agent, load(run, "last").agent
    return changed(before.theta.detach(), after.theta.detach(), policy_parts(after), CHANGED)


def cross_dependence(run: Path) -> float:
    """The follow-up's criterion on the first update of transfer run ``run``: the largest relative change of one
    primitive's gradient when another primitive's weights move (0: modular; ``societal.modularity``)."""
    from societal.config import Config
    from societal.learning.build import build
    from societal.modularity import gradient_dependence

    parts = build(Config.from_dict(json.loads((run / "config.json").read_text())))
    d = gradient_dependence(parts.learner, parts.collector.gather(parts.steps_per_rollout).samples)
    return max(d[j][k] for j in d for k in d if j != k and "shared" not in (j, k))


def transfer_measures(run: Path, before: str, after: str) -> dict:
    """What the transfer run ``run`` from task ``before`` to ``after`` changed: the concerned primitives, the mean
    |Δw| and % of weights moved of those and of the others (and their ratio, ``concentration``), and the
    criterion on its first update."""
    change = weight_change(run)
    mine = {f"p{k}" for k in concerned(before, after)}
    row: dict = {"concerned": " ".join(sorted(mine))}
    for i, measure in enumerate(("dw", "moved_pct")):
        for group, names in (("concerned", mine), ("others", set(change) - mine - {"shared"})):
            row[f"{measure}_{group}"] = round(float(np.mean([change[k][i] for k in names])), 4) if names else None
    row["concentration"] = round(row["dw_concerned"] / row["dw_others"], 2) if row["dw_others"] else None
    row["dw_per_part"] = " ".join(f"{k}:{v[0]:.4f}" for k, v in change.items())
    row["cross_dependence"] = round(cross_dependence(run), 4)
    return row


def summarize(root: Path, only: list[str] | None = None) -> pd.DataFrame:
    """One row per run: env steps to the optimum and, for transfers, the weight change per primitive; then per
    (family, condition) the median over seeds. Draws ``<family>/transfer.png`` and ``<family>/weights.png``."""
    rows = []
    for family in only or FAMILIES:
        first, transfers = FAMILIES[family]
        runs = read_runs(root / "modularity" / family)
        for folder, metrics in runs.items():
            ev = metrics.dropna(subset=["eval_return_mean"])
            hit = ev[ev.eval_return_mean >= OPTIMUM]
            agent, stage = folder.parent.name.split("-", 1)
            row = {"family": family, "agent": agent, "stage": stage, "seed": folder.name,
                   "env_steps": int(metrics.env_steps.iloc[-1]),
                   "eval_return": round(float(ev.eval_return_mean.iloc[-1]), 3) if len(ev) else None,
                   "steps_to_optimum": int(hit.env_steps.iloc[0]) if len(hit) else None}
            if stage.startswith(("transfer-", "back-")) and (folder / "checkpoints" / "last.pt").is_file():
                task = stage.split("-", 1)[1]
                row |= transfer_measures(folder, first if task != first else transfers[0], task)
            rows.append(row)
        if runs:
            plot_family(root / "modularity" / family, evaluations(runs), [r for r in rows if r["family"] == family])
    if not rows:
        raise SocietalError(f"no runs of 'modularity' under {root / 'modularity'}; run them with --for-real first")
    table = pd.DataFrame(rows)
    measures = ["dw_concerned", "dw_others", "concentration", "moved_pct_concerned", "moved_pct_others",
                "cross_dependence"]
    numeric = ["steps_to_optimum", "eval_return", *(c for c in measures if c in table)]
    median = table.groupby(["family", "agent", "stage"])[numeric].median().reset_index()
    median["seed"] = "median"
    return pd.concat([table, median], ignore_index=True).astype({"steps_to_optimum": "Int64", "env_steps": "Int64"})


def plot_family(folder: Path, curves: dict[str, list[pd.DataFrame]], rows: list[dict]) -> None:
    """Transfer curves (median and 10–90 % band over seeds; transfer solid, from scratch dashed) per transfer
    task, and the mean |Δw| of each primitive's policy weights during each transfer (median over seeds)."""
    from matplotlib.patches import Patch

    from societal.plots import _save, counts, figure

    stages = sorted({c.split("-", 1)[1] for c in curves if not c.endswith("pretrain")} - {""}, key=lambda s: s[::-1])
    tasks = sorted({s.split("-", 1)[1] for s in stages})
    fig, axes = figure(1, len(tasks), figsize=(5 * len(tasks), 4.6), squeeze=False, layout="constrained")
    for ax, task in zip(axes[0], tasks):
        for n, agent in enumerate(AGENTS):
            for stage, style in (("transfer", "-"), ("back", "-"), ("scratch", "--")):
                evals = curves.get(f"{agent}-{stage}-{task}")
                if not evals:
                    continue
                grid, low, mid, high = band(evals, "env_steps")
                seeds = f": median of {len(evals)} seeds" if len(evals) > 1 else " (1 seed)"
                ax.plot(grid, mid, style, color=f"C{n}", label=f"{agent} {stage}{seeds}")
                ax.fill_between(grid, low, high, color=f"C{n}", alpha=0.15, lw=0)
        ax.axhline(OPTIMUM, color="grey", lw=0.5, label=f"counted as optimal (≥ {OPTIMUM:.3g})")
        ax.set(xlabel="env steps", ylabel="evaluation return", title=task)
        counts(ax.xaxis)
    named = {label: h for ax in axes[0] for h, label in zip(*ax.get_legend_handles_labels())}  # once per curve
    band_patch = Patch(facecolor="0.5", alpha=0.15, label="shaded: 10th to 90th percentile over seeds")
    fig.legend(handles=[*named.values(), band_patch], loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    _save(fig, folder / "transfer.png")

    changed = pd.DataFrame([dict(r, **dict(kv.split(":") for kv in r["dw_per_part"].split()))
                            for r in rows if "dw_per_part" in r])
    if changed.empty:
        return
    parts = [c for c in changed if c.startswith("p") and c[1:].isdigit()] + (["shared"] if "shared" in changed else [])
    changed[parts] = changed[parts].apply(pd.to_numeric)
    grid = changed.groupby(["agent", "stage"])[parts].median()
    fig, ax = figure(figsize=(1.2 + 0.6 * len(parts), 0.9 + 0.35 * len(grid)))
    image = ax.imshow(grid.to_numpy(float), vmin=0, cmap="viridis", aspect="auto")
    concerns = changed.groupby(["agent", "stage"]).concerned.first()
    for y, key in enumerate(grid.index):  # the primitives the change concerns
        for x, part in enumerate(parts):
            if part in concerns[key].split():
                ax.text(x, y, "×", ha="center", va="center", color="white")
    ax.set_xticks(range(len(parts)), parts)
    ax.set_yticks(range(len(grid)), [f"{a} {s}" for a, s in grid.index], fontsize=7)
    ax.set_title("mean |Δw| of each primitive's policy\nin transfer (median over seeds; ×: concerned)", fontsize=8)
    fig.colorbar(image, ax=ax)
    _save(fig, folder / "weights.png")
