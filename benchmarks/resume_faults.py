"""Kill training runs at random moments (SIGKILL: no chance to save), resume each, and check that it ends with
exactly the metrics of an uninterrupted run.

    python benchmarks/resume_faults.py [--runs 20] [--seed 0] [--out runs/resume-faults] [--compile]

Prints, per killed run, the update it had logged when it was killed, the update its last checkpoint held,
how many updates the kill lost, and whether the resumed run ended identical (every column of metrics.csv
but the timings). ``--compile`` runs every task compiled: a compiled run is not reproducible bit for bit
(its kernels round differently from eager ones and it switches to them when compiling ends), so there it
reports how far each resumed run's last evaluation lies from the uninterrupted run's, and whether its
resume went through.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

TASKS = {
    "chain": ["societal/Chain-v0", "--steps", "1000000"],
    "bandit-dropout": ["societal/Bandit-v0", "--dropout", "--steps", "1000000"],
    "random-mdp-general": ["societal/RandomMDP-v0", "--preset", "general", "--set", "explore=0.05",
                           "--steps", "1000000"],
    "frozenlake-monolithic": ["FrozenLake-v1", "--agent", "monolithic", "--steps", "1000000"],
}
COMMON = ["--set", "eval_every=10", "--quiet", "--no-compile"]  # checkpoints as by default
TIMING = ["wall_s", "collect_s", "update_s", "env_steps_per_s"]


def societal(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "societal", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def metrics(folder: Path) -> pd.DataFrame:
    m = pd.read_csv(folder / "metrics.csv")
    return m.drop(columns=[c for c in TIMING if c in m])


def logged_updates(folder: Path) -> int:
    """Updates in the run's metrics.csv so far (its first row is the evaluation before training)."""
    try:
        return max(0, sum(1 for _ in open(folder / "metrics.csv")) - 2)
    except OSError:
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/resume-faults"))
    parser.add_argument("--compile", action="store_true", help="every run compiled")
    args = parser.parse_args()
    if args.compile:
        COMMON[-1] = "--compile"
    if args.out.exists():
        sys.exit(f"{args.out} exists; choose another --out")
    rng = random.Random(args.seed)
    updates = {}
    for name, task in TASKS.items():  # the uninterrupted runs: how many updates each makes
        assert societal("train", *task, *COMMON, "--out", str(args.out / name / "whole")).wait() == 0
        updates[name] = len(metrics(args.out / name / "whole")) - 1
    rows = []
    for k in range(args.runs):
        name = list(TASKS)[k % len(TASKS)]
        folder = args.out / name / f"killed{k}"
        process = societal("train", *TASKS[name], *COMMON, "--out", str(folder))
        # at a random moment within a random update (by progress, not by time: the machine's load varies)
        target = rng.randint(updates[name] // 5, updates[name] * 19 // 20)
        while process.poll() is None and logged_updates(folder) < target:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.05))
        process.kill()
        process.wait()
        logged = logged_updates(folder)
        last = folder / "checkpoints" / "last.pt"
        saved = torch.load(last, weights_only=True)["update"] if last.is_file() else None
        if saved is None:  # killed before its first checkpoint: nothing to resume, start again
            resumed = societal("train", *TASKS[name], *COMMON, "--out", str(folder.with_name(folder.name + "b")))
            folder = folder.with_name(folder.name + "b")
        else:
            resumed = societal("train", "--resume", str(folder), "--quiet")
        code = resumed.wait()
        ours, whole = (metrics(f) for f in (folder, args.out / name / "whole"))
        same = code == 0 and ours.equals(whole)
        final = [m.eval_return_mean.dropna().iloc[-1] for m in (ours, whole)]
        rows.append({"run": k, "task": name, "killed after update": logged, "checkpoint update": saved,
                     "updates lost": None if saved is None else logged - saved, "resumed exit": code,
                     "identical": same, "|Δ final eval|": round(abs(final[0] - final[1]), 4)})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    print(f"{table.identical.sum()} of {len(table)} killed runs ended identical to the uninterrupted run; updates "
          f"lost per kill: median {table['updates lost'].median():.0f}, max {table['updates lost'].max():.0f}")
    if args.compile:
        print(f"compiled: {(table['resumed exit'] == 0).sum()} of {len(table)} resumed runs finished; their last "
              f"evaluation within {table['|Δ final eval|'].max():.4g} of the uninterrupted run's")
        return 0 if (table["resumed exit"] == 0).all() else 1
    return 0 if table.identical.all() else 1


if __name__ == "__main__":
    sys.exit(main())
