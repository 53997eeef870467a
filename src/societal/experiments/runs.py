"""Reading an experiment's run folders ``<folder>/<condition>/seed<k>`` and their evaluation curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def read_runs(folder: Path) -> dict[Path, pd.DataFrame]:
    """The metrics of every run folder ``<folder>/<condition>/seed<k>``, each file read once."""
    return {f.parent: pd.read_csv(f) for f in sorted(folder.glob("*/seed*/metrics.csv"))}


def evaluations(runs: dict[Path, pd.DataFrame]) -> dict[str, list[pd.DataFrame]]:
    """condition → the evaluation rows of each of its seeds that has evaluated."""
    curves: dict[str, list[pd.DataFrame]] = {}
    for folder, metrics in runs.items():
        if len(ev := metrics.dropna(subset=["eval_return_mean"])):
            curves.setdefault(folder.parent.name, []).append(ev)
    return curves


def band(evals: list[pd.DataFrame], x: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x grid, 10 %, median, 90 %)`` of the seeds' evaluation returns, on the range every seed reached (as the
    paper draws its curves)."""
    grid = np.linspace(0, min(e[x].max() for e in evals), 100)
    low, mid, high = np.percentile(np.stack([np.interp(grid, e[x], e.eval_return_mean) for e in evals]),
                                   [10, 50, 90], axis=0)
    return grid, low, mid, high
