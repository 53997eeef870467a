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


def _pitfalls() -> list[tuple[str, str, dict]]:
    # grid worlds that cost every step as Taxi does (-1 a step, 20 at the goal, -10 in a pit): (size, pits, slip)
    costs = [(f"costgrid-{n}x{n}-{'slip' if slip else 'det'}-{seed}", "societal/GridWorld-v0",
              dict(rows=n, pits=pits, slip=slip, seed=seed, step_reward=-1.0, goal_reward=20.0, pit_reward=-10.0))
             for seed, (n, pits, slip) in enumerate([(5, 3, 0.0), (6, 5, 0.1), (7, 6, 0.0)], start=30)]
    return [*((f"deadline-{seed}", "societal/Deadline-v0", dict(seed=seed)) for seed in range(3)),
            *costs, ("taxi", "Taxi-v4", {}),
            *((f"lure-{seed}", "societal/Lure-v0", dict(seed=seed)) for seed in range(3))]


TASKS: list[tuple[str, str, dict]] = [
    *_random_mdps(),
    *_grids(),
    *((f"chain-{n}", "societal/Chain-v0", dict(length=n)) for n in (10, 15, 20, 30)),
    *_bandits(),
    *((f"frozenlake-{m}-{'slip' if slip else 'det'}", "FrozenLake-v1", dict(map_name=m, is_slippery=slip))
      for m in ("4x4", "8x8") for slip in (False, True)),
    *_pitfalls(),
]
"""(name, env id, constructor arguments) of every task, all from fixed generator seeds: the 34 of the first suite,
then the classes that broke it (a binding time limit, step costs, a lure)."""

CONDITIONS: dict[str, list[str]] = {
    "paper": ["--preset", "paper"],
    "general": ["--preset", "general"],
    "monolithic": ["--preset", "paper", "--agent", "monolithic"],
    "ppo-tuned": ["--preset", "paper", "--agent", "monolithic", "--set", "policy_lr=4e-4", "--set", "entropy=0.01"],
    "ppo-cleanrl": ["--preset", "ppo"],
}
"""The market at the paper's and at the general settings, and monolithic PPO at the paper's (lr 4e-5, entropy
0.1), at a tuned learning rate and entropy (4e-4, 0.01), and at CleanRL's ppo.py defaults (the ``ppo`` preset)."""
TUNED_PPO = ("ppo-tuned", "ppo-cleanrl")


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
    """One row per run (its exact assessment), also written to ``assessment.csv``; draws ``markets.png``. A run's
    ``fraction`` is that of the policy its condition evaluates with (a society's ``eval_greedy``); monolithic PPO
    is judged by the better of its sampled and greedy policies."""
    folders = sorted(p.parent.parent for p in (root / "markets").glob("*/*/seed*/checkpoints/last.pt"))
    if not folders:
        raise SocietalError(f"no runs of 'markets' under {root / 'markets'}; run them with --for-real first")
    rows = []
    for folder in folders:
        config = json.loads((folder / "config.json").read_text())
        rows.append({"task": folder.parent.parent.name, "condition": folder.parent.name, "seed": folder.name,
                     "env": config["env"], "agent": config["agent"], **assess_run(folder)})
    table = pd.DataFrame(rows)
    better = table[["fraction_sampled", "fraction_greedy"]].max(1)
    table["fraction"] = np.where(table.agent == "monolithic", better,
                                 np.where(table.eval_greedy, table.fraction_greedy, table.fraction_sampled))
    table.to_csv(root / "markets" / "assessment.csv", index=False)
    plot_suite(table, root / "markets" / "markets.png")
    return table


def report(table: pd.DataFrame) -> str:
    """Per task and condition the median over seeds of the exact fraction of the optimal return (of the policy
    the condition evaluates with) and of the optimal path's states priced within 0.05; then the verdict."""
    pivot = table.groupby(["task", "condition"])[["fraction", "fraction_sampled", "bids_close"]].median().unstack()
    pivot = pivot.reindex([name for name, _, _ in TASKS if name in set(table.task)])
    return pivot.round(3).to_string() + "\n\n" + "\n".join(suite_summary(table))


def solved(table: pd.DataFrame) -> pd.Series:
    """Per (task, condition): whether the median over seeds of ``fraction`` is at least ``GOOD``."""
    return table.groupby(["task", "condition"]).fraction.median() >= GOOD


def suite_summary(table: pd.DataFrame) -> list[str]:
    """The suite's verdict in a few lines, over every task: which the tuned PPO solves (the better of its settings,
    median over seeds), how many each condition solves, there and overall, sampled and greedy."""
    done = solved(table).unstack()
    tasks = list(done.index)
    tuned = [c for c in TUNED_PPO if c in done] or [c for c in ("monolithic",) if c in done]
    by_ppo = set(done.index[done[tuned].any(axis=1)]) if tuned else set()
    lines = [f"tuned PPO ({' or '.join(tuned) or 'none run'}, median over seeds ≥ {GOOD}) solves {len(by_ppo)} of "
             f"{len(tasks)} tasks; it fails: {', '.join(t for t in tasks if t not in by_ppo) or 'none'}"]
    for condition in done.columns:
        runs, ok = table[table.condition == condition], done[condition].dropna().astype(bool)
        missed = [t for t in sorted(by_ppo) if not ok.get(t, False)]
        sampled, greedy = ((runs[f"fraction_{k}"] >= GOOD).sum() for k in ("sampled", "greedy"))
        lines.append(
            f"{condition}: solves {int(ok.sum())} of {len(ok)} tasks ({ok.mean():.0%}); of the tuned PPO's "
            f"{len(by_ppo)}: {len(by_ppo) - len(missed)} (misses: {', '.join(missed) or 'none'}); runs ≥ {GOOD}: "
            f"sampled {sampled} of {len(runs)}, greedy {greedy}")
    on = table[table.condition.isin({"general", "paper"}) & table.task.isin(by_ppo)]
    for condition, runs in on.groupby("condition"):
        pooled = (runs.bids_close * runs.path_states).sum() / max(runs.path_states.sum(), 1)
        lines.append(f"{condition}: winning bid within 0.05 of Q* on {pooled:.0%} of the optimal paths' states "
                     f"(pooled over the tuned PPO's tasks), {runs.bids_close.mean():.0%} (mean over runs)")
    for condition, runs in table[table.agent == "society"].groupby("condition"):
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
