"""The market beyond the paper: a suite of finite tasks with exact ground truth, and how each agent fares on it.

Every task is a table (``TabularEnv``), so Q* comes from value iteration and an agent's policy is judged
exactly (``societal.exact``): its expected discounted return from the start as a fraction of the
optimum, with bids sampled and greedy; whether the top mean bid is an optimal action; and how far the
winning bid lies from Q* on the states the optimal policy visits. Runs go to
``<root>/markets/<task>/<condition>/seed<k>``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from societal.errors import SocietalError

STEPS = 5_000_000
GOOD = 0.95  # a policy within 5 % of the optimal return solves a task


def _random_mdps() -> list[tuple[str, str, dict]]:
    # (states, actions, horizon, exits, traps, noise), generator seed = position in this list
    shapes = [(5, 2, 20, 2, 0, 0.1), (8, 3, 50, 3, 1, 0.2), (8, 4, 30, 3, 1, 0.3), (10, 2, 40, 2, 1, 0.2),
              (12, 3, 60, 3, 1, 0.2), (15, 4, 50, 3, 2, 0.1), (20, 3, 80, 4, 2, 0.2), (25, 5, 60, 3, 2, 0.2),
              (30, 4, 100, 4, 3, 0.2), (40, 6, 100, 4, 3, 0.1), (50, 3, 100, 4, 3, 0.2), (50, 6, 100, 4, 3, 0.3)]
    return [(f"mdp-{n}s{m}a-{seed}", "societal/RandomMDP-v0",
             dict(states=n, actions=m, horizon=h, exits=e, traps=t, noise=p, seed=seed))
            for seed, (n, m, h, e, t, p) in enumerate(shapes)]


def _grids() -> list[tuple[str, str, dict]]:
    # (size, pits, slip), generator seed = position in this list
    shapes = [(5, 3, 0.0), (5, 3, 0.1), (6, 5, 0.0), (7, 6, 0.2), (8, 8, 0.0), (8, 8, 0.1), (10, 12, 0.0),
              (10, 12, 0.1)]
    grids = [(f"grid-{n}x{n}-{'slip' if slip else 'det'}-{seed}", "societal/GridWorld-v0",
              dict(rows=n, pits=pits, slip=slip, seed=seed)) for seed, (n, pits, slip) in enumerate(shapes)]
    return [*grids, ("cliff-4x12", "societal/GridWorld-v0", dict(rows=4, cols=12, cliff=True, pits=0))]


def _bandits() -> list[tuple[str, str, dict]]:
    rng = np.random.default_rng(0)
    close = [sorted(np.round(rng.uniform(0.5, 0.9, arms), 3).tolist()) for arms in (8, 12)]
    return [*((f"bandit-{k}", "societal/Bandit-v0", dict(arms=k)) for k in (8, 12, 16)),
            *((f"bandit-{len(v)}-close", "societal/Bandit-v0", dict(arms=len(v), values=v)) for v in close)]


TASKS: list[tuple[str, str, dict]] = [
    *_random_mdps(),
    *_grids(),
    *((f"chain-{n}", "societal/Chain-v0", dict(length=n)) for n in (10, 15, 20, 30)),
    *_bandits(),
    *((f"frozenlake-{m}-{'slip' if slip else 'det'}", "FrozenLake-v1", dict(map_name=m, is_slippery=slip))
      for m in ("4x4", "8x8") for slip in (False, True)),
]
"""(name, env id, constructor arguments) of every task, all from fixed generator seeds."""

CONDITIONS: dict[str, list[str]] = {
    "paper": ["--preset", "paper"],
    "general": ["--preset", "general"],
    "monolithic": ["--preset", "paper", "--agent", "monolithic"],
}


def commands(seeds: range, root: Path, scale: float = 1.0) -> list[tuple[Path, list[str]]]:
    """``(output folder, argv)`` of every (task, condition, seed), each ``STEPS`` env steps × ``scale``."""
    runs = []
    for seed in seeds:
        for name, env, kwargs in TASKS:
            for condition, flags in CONDITIONS.items():
                folder = root / "markets" / name / condition / f"seed{seed}"
                env_kwargs = [a for k, v in kwargs.items() for a in ("--env-kwarg", f"{k}={v}")]
                runs.append((folder, ["train", env, *env_kwargs, *flags, "--compile", "--steps",
                                      str(max(1, int(STEPS * scale))), "--seed", str(seed), "--out", str(folder)]))
    return runs


def assess_run(folder: Path) -> dict:
    """The exact assessment of a run's last checkpoint (the policy at the end of its budget)."""
    from societal.run import load

    run = load(folder, "last")
    metrics = pd.read_csv(folder / "metrics.csv")
    return {"env_steps": run.env_steps, "wall_s": round(float(metrics.wall_s.iloc[-1])),
            "eval_greedy": run.config.eval_greedy, **run.assess().to_dict()}


def summarize(root: Path) -> pd.DataFrame:
    """One row per run (its exact assessment), also written to ``assessment.csv``; draws ``markets.png``."""
    folders = sorted(p.parent.parent for p in (root / "markets").glob("*/*/seed*/checkpoints/last.pt"))
    if not folders:
        raise SocietalError(f"no runs of 'markets' under {root / 'markets'}; run them with --for-real first")
    rows = []
    for folder in folders:
        config = json.loads((folder / "config.json").read_text())
        rows.append({"task": folder.parent.parent.name, "condition": folder.parent.name, "seed": folder.name,
                     "env": config["env"], **assess_run(folder)})
    table = pd.DataFrame(rows)
    table["fraction"] = np.where(table.eval_greedy, table.fraction_greedy, table.fraction_sampled)
    table.to_csv(root / "markets" / "assessment.csv", index=False)
    plot_suite(table, root / "markets" / "markets.png")
    return table


def report(table: pd.DataFrame) -> str:
    """Per task and condition the median over seeds of the exact fraction of the optimal return (of the policy
    the condition evaluates with) and of the optimal path's states priced within 0.05; then the verdict."""
    pivot = table.groupby(["task", "condition"])[["fraction", "fraction_sampled", "bids_close"]].median().unstack()
    pivot = pivot.reindex([name for name, _, _ in TASKS if name in set(table.task)])
    return pivot.round(3).to_string() + "\n\n" + "\n".join(suite_summary(table))


def suite_summary(table: pd.DataFrame) -> list[str]:
    """The suite's verdict in a few lines: which tasks PPO solves, and how often each condition solves them."""
    lines = []
    monolithic = table[table.condition == "monolithic"]  # judged by its better policy, sampled or greedy
    ppo = monolithic[["fraction_sampled", "fraction_greedy"]].max(1).groupby(monolithic.task).max()
    solved_by_ppo = set(ppo[ppo >= GOOD].index)
    failed = ", ".join(sorted(set(ppo.index) - solved_by_ppo))
    lines.append(f"monolithic PPO solves {len(solved_by_ppo)} of {ppo.size} tasks "
                 f"(fraction of the optimal return ≥ {GOOD}); it fails: {failed}")
    for condition, runs in table.groupby("condition"):
        on = runs[runs.task.isin(solved_by_ppo)]
        pooled = (on.bids_close * on.path_states).sum() / max(on.path_states.sum(), 1)
        prices = (f"winning bid within 0.05 of Q* on {pooled:.0%} of the optimal paths' states (pooled), "
                  f"{on.bids_close.mean():.0%} (mean over runs)") if condition != "monolithic" else "no bids"
        lines.append(
            f"{condition}: on PPO's tasks, {(on.fraction >= GOOD).sum()} of {len(on)} runs ≥ {GOOD} as evaluated "
            f"(sampled {(on.fraction_sampled >= GOOD).sum()}, greedy {(on.fraction_greedy >= GOOD).sum()}); "
            f"{prices}; on PPO's failures ≥ {GOOD}: {(runs[~runs.task.isin(solved_by_ppo)].fraction >= GOOD).sum()} "
            f"of {(~runs.task.isin(solved_by_ppo)).sum()} runs")
    for condition, runs in table[table.condition != "monolithic"].groupby("condition"):
        chain, bandit = runs[runs.task == "chain-20"], runs[runs.task == "bandit-8"]
        if len(chain) and len(bandit):
            lines.append(f"{condition}: chain-20 worst |winning bid − Q*| on the path "
                         f"{', '.join(f'{v:.3f}' for v in chain.worst_bid_error)}; bandit-8 best arm wins "
                         f"{', '.join(f'{v:.1%}' for v in bandit.optimal_sampled)} of sampled auctions, "
                         f"{', '.join(f'{v:.0%}' for v in bandit.optimal_choice)} greedy (per seed)")
    return lines


def plot_suite(table: pd.DataFrame, path: Path) -> None:
    """Per task: the exact fraction of the optimal return (the policy each condition evaluates with) and the
    share of the optimal path's states whose winning bid is within 0.05 of Q*."""

    from societal.plots import _save, figure

    tasks = [name for name, _, _ in TASKS if name in set(table.task)]
    conditions = [c for c in CONDITIONS if c in set(table.condition)]
    fig, axes = figure(2, 1, figsize=(max(8, 0.38 * len(tasks)), 8), sharex=True, layout="constrained")
    for i, condition in enumerate(conditions):
        runs = table[table.condition == condition].groupby("task")
        seeds = runs.seed.nunique().max()
        for ax, measure in zip(axes, ("fraction", "bids_close")):
            median = runs[measure].median().reindex(tasks)
            low, high = runs[measure].min().reindex(tasks), runs[measure].max().reindex(tasks)
            x = np.arange(len(tasks)) + (i - (len(conditions) - 1) / 2) * 0.25
            ax.errorbar(x, median, yerr=[median - low, high - median], fmt="o", ms=4, capsize=2,
                        label=f"{condition}: median of {seeds} seeds, bar lowest to highest" if seeds > 1
                        else f"{condition} (1 seed)")
    axes[0].axhline(GOOD, color="k", lw=0.8, ls="--", label=f"solved: {GOOD:.0%} of the optimum")
    axes[0].set(ylabel="return / optimum (exact)", ylim=(-0.05, 1.05), title="The market on the suite of finite tasks")
    axes[1].set(ylabel="optimal path's states with\n|winning bid − Q*| ≤ 0.05", ylim=(-0.05, 1.05))
    axes[1].set_xticks(range(len(tasks)), tasks, rotation=70, ha="right", fontsize=7)
    fig.legend(handles=axes[0].get_legend_handles_labels()[0], loc="outside upper center", ncols=2, fontsize=8,
               frameon=False)
    _save(fig, path)
