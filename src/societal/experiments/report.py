"""Summaries of an experiment's run folders: what the paper's claims are checked against."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from societal.errors import SocietalError

TARGET = {"bandit": 0.79, "chain": 0.8, "duality": 4.5}  # evaluation return that counts as solved
# (bandit: the best arm wins ≥ 95% of evaluation episodes, 0.95 · 0.8 + 0.05 · 0.6 ≥ 0.79)
BID_ERROR_AT = (2_000_000, 10_000_000)  # env steps at which mean |bid − Q*| is reported


def bids_at(bids: pd.DataFrame, env_steps: float) -> pd.DataFrame:
    """The bids of the evaluation nearest to ``env_steps``."""
    steps = bids.env_steps.unique()
    return bids[bids.env_steps == min(steps, key=lambda s: abs(s - env_steps))]


def summarize_run(folder: Path, target: float) -> dict:
    metrics, bids = pd.read_csv(folder / "metrics.csv"), pd.read_csv(folder / "bids.csv")
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
    folders = sorted(p.parent for p in (root / name).glob("*/seed*/metrics.csv"))
    if not folders:
        raise SocietalError(f"no runs of {name!r} under {root / name}; run them with --for-real first")
    return pd.DataFrame([summarize_run(f, TARGET[name]) for f in folders])
