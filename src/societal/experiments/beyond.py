"""Beyond tables: the society against PPO as its users run it, on classic control and on MinAtar.

Each task is trained under two conditions at the same env-step budget: ``society`` (the settings a user gets on
that task by default) and ``ppo`` (the monolithic agent at the settings PPO's users choose for that family, not
the paper's). A run's result is its last evaluation (the policy at the end of its budget, not its best), and
each task's score is normalised between a uniformly random policy and the tuned PPO:

    score = (return − random) / (median return of PPO − random)

so that 1 is PPO's level and 0 a random policy's. Runs go to ``<root>/<family>/<task>/<condition>/seed<k>``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from societal.errors import SocietalError

# RL Baselines3 Zoo's tuned PPO for LunarLander (its hyperparams/ppo.yml): 16 envs × 1,024 steps, minibatches of 64,
# 4 epochs, γ 0.999, λ 0.98, entropy 0.01, lr 3e-4 (constant)
ZOO_LUNAR = ["--num-envs", "16", "--set", "auction_steps_per_update=16384", "--set", "minibatch=64", "--set",
             "gamma=0.999", "--set", "gae_lambda=0.98", "--set", "policy_lr=3e-4", "--set", "value_lr=3e-4",
             "--set", "lr_anneal=False", "--set", "lr_decay=1.0"]
# family → [(task, env id, env steps, PPO's flags)]. Classic control: CleanRL's budget and settings (the ppo
# preset) for CartPole and Acrobot; LunarLander 1 M steps at the Zoo's settings. MinAtar: 10 M, as in Young & Tian
# (2019), PPO as Pgx's MinAtar example runs it (the ppo_minatar preset).
TASKS: dict[str, list[tuple[str, str, int, list[str]]]] = {
    "control": [("cartpole", "CartPole-v1", 500_000, ["--preset", "ppo"]),
                ("acrobot", "Acrobot-v1", 500_000, ["--preset", "ppo"]),
                ("lunarlander", "LunarLander-v3", 1_000_000, ["--preset", "ppo", *ZOO_LUNAR])],
    "minatar": [(game.lower(), f"MinAtar/{game}-v1", 10_000_000, ["--preset", "ppo_minatar"])
                for game in ("Breakout", "Asterix", "Freeway", "Seaquest", "SpaceInvaders")],
}
# Published returns on the same tasks, to show the PPO baseline is no straw man. Classic control: CleanRL's ppo.py
# at the settings of the ppo preset, 500 k steps (docs.cleanrl.dev, rl-algorithms/ppo: average episodic return);
# LunarLander: RL Baselines3 Zoo's PPO at 1 M steps (its benchmark.md, LunarLander-v2). MinAtar: Young & Tian
# (2019), the best of DQN and AC(λ) after 5 M frames (moving average of 100 training episodes, read from the
# learning curves of the paper and of the MinAtar README; full action set).
PUBLISHED: dict[str, tuple[float, str]] = {
    "cartpole": (490.04, "CleanRL ppo.py"), "acrobot": (-86.36, "CleanRL ppo.py"),
    "lunarlander": (242.1, "SB3 Zoo PPO"), "breakout": (17.5, "AC(0.8)"), "asterix": (20.0, "AC(0)"),
    "freeway": (50.0, "DQN"), "seaquest": (20.0, "DQN"), "spaceinvaders": (185.0, "AC(0.8)"),
}
GOOD = 0.9  # a society within 10 % of PPO's gain over random play matches it
RANDOM_EPISODES = 100


def commands(family: str, seeds: range, root: Path, scale: float = 1.0) -> list[tuple[Path, list[str]]]:
    """``(output folder, argv)`` of every (task, condition, seed) of ``family``, budgets × ``scale``: the society
    with the settings a user gets by default, PPO with its users' settings."""
    runs = []
    for seed in seeds:
        for task, env, steps, ppo in TASKS[family]:
            for condition, flags in (("society", []), ("ppo", ppo)):
                folder = root / family / task / condition / f"seed{seed}"
                runs.append((folder, ["train", env, *flags, "--steps", str(max(1, int(steps * scale))),
                                      "--seed", str(seed), "--out", str(folder)]))
    return runs


def random_return(env_id: str, episodes: int = RANDOM_EPISODES, seed: int = 0) -> float:
    """The mean undiscounted return of uniformly random actions over ``episodes`` episodes."""
    from societal.environments.vector import make

    env = make(env_id)
    env.action_space.seed(seed)
    total = 0.0
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total, done = total + float(reward), terminated or truncated
    return total / episodes


def results(family: str, root: Path) -> pd.DataFrame:
    """One row per run: its task, condition, seed, env steps, wall-clock seconds and last evaluation return."""
    rows = []
    for task, env, *_ in TASKS[family]:
        for metrics_csv in sorted((root / family / task).glob("*/seed*/metrics.csv")):
            metrics = pd.read_csv(metrics_csv)
            ev = metrics.dropna(subset=["eval_return_mean"])
            if len(ev):
                folder = metrics_csv.parent
                rows.append({"task": task, "env": env, "condition": folder.parent.name,
                             "seed": int(folder.name.removeprefix("seed")), "env_steps": int(ev.env_steps.iloc[-1]),
                             "wall_s": round(float(metrics.wall_s.iloc[-1])),
                             "eval_return": float(ev.eval_return_mean.iloc[-1])})
    if not rows:
        raise SocietalError(f"no runs of {family!r} under {root / family}; run them with --for-real first")
    return pd.DataFrame(rows)


def scores(table: pd.DataFrame) -> pd.DataFrame:
    """Per task and condition: seeds, the median and 10–90 % band of the last evaluation return, and the score
    (``random`` measured by ``random_return``, PPO's median as 1)."""
    rows = []
    for task, runs in table.groupby("task", sort=False):
        random = random_return(runs.env.iloc[0])
        ppo = runs[runs.condition == "ppo"].eval_return.median()
        for condition, group in runs.groupby("condition", sort=False):
            low, median, high = np.percentile(group.eval_return, [10, 50, 90])
            rows.append({"task": task, "condition": condition, "seeds": len(group), "median": median,
                         "p10": low, "p90": high, "random": random,
                         "score": (median - random) / (ppo - random) if ppo > random else np.nan,
                         "published": PUBLISHED[task][0], "source": PUBLISHED[task][1]})
    return pd.DataFrame(rows).round(3)


def summarize(family: str, root: Path) -> pd.DataFrame:
    """The per-run results (``results.csv``), curves (``returns.png``) and the per-task table (``scores.csv``)."""
    from societal.experiments.report import plot_envs
    from societal.experiments.runs import evaluations, read_runs

    table = results(family, root)
    table.to_csv(root / family / "results.csv", index=False)
    plot_envs({env: evaluations(read_runs(root / family / task)) for task, env, *_ in TASKS[family]
               if (root / family / task).is_dir()}, root / family / "returns.png")
    summary = scores(table)
    summary.to_csv(root / family / "scores.csv", index=False)
    return summary


def verdict(summary: pd.DataFrame) -> str:
    """How many tasks the society matches PPO on (score ≥ ``GOOD``)."""
    society = summary[summary.condition == "society"]
    matched = society[society.score >= GOOD]
    return (f"society ≥ {GOOD} of PPO's gain over random play on {len(matched)} of {len(society)} tasks"
            + (f": {', '.join(matched.task)}" if len(matched) else ""))
