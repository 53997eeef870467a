"""One run = one folder (DESIGN.md §6)::

    config.json              everything needed to rerun it
    metrics.csv              one row per update (units in the column names)
    bids.csv                 per evaluation, state and learner: training visits, Beta mean and std of the bid, Q*,
                             win rate
    tensorboard/             the same scalars as TensorBoard events
    plots/*.png              return curve; bids against Q*
    checkpoints/{last,best}.pt
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from societal.config import Config
from societal.errors import SocietalError
from societal.monolithic import Monolithic
from societal.society import Society

if TYPE_CHECKING:
    from societal.primitives import LiteralActions, Options

METRICS = [
    "update", "env_steps", "auction_steps", "wall_s", "collect_s", "update_s", "env_steps_per_s",
    "episodes", "return_mean", "return_std", "return_min", "return_max", "winner_utility",
    "conservation_residual", "value_loss", "policy_entropy", "clip_fraction", "policy_lr", "entropy_coef",
    "eval_return_mean", "eval_return_std", "eval_success_rate",
    "option_value_loss", "option_policy_entropy", "option_clip_fraction",  # train_options only
]
BIDS = ["update", "env_steps", "state", "visits", "learner", "primitive", "action", "mean_bid", "std_bid", "q_star",
        "win_rate"]
CHECKPOINT_KEYS = {"format", "config", "agent_spec", "agent", "update", "env_steps", "eval_return"}


def check_new(path: Path) -> None:
    if path.exists():
        raise SocietalError(f"output folder {path} already exists; choose another --out or remove it")


class RunWriter:
    """Creates the run folder and appends to its files as training goes."""

    def __init__(self, path: Path, config: Config) -> None:
        from torch.utils.tensorboard import SummaryWriter  # slow import: only when a run starts

        check_new(path)
        self.path = path
        (path / "checkpoints").mkdir(parents=True)
        (path / "plots").mkdir()
        (path / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        self.tensorboard = SummaryWriter(str(path / "tensorboard"))
        self.files = {}
        for name, columns in (("metrics", METRICS), ("bids", BIDS)):
            f = open(path / f"{name}.csv", "w", newline="")  # noqa: SIM115  (closed in close())
            writer = csv.DictWriter(f, columns, restval="")
            writer.writeheader()
            self.files[name] = (f, writer)

    def metrics(self, row: dict) -> None:
        self._append("metrics", [row])
        for key, value in row.items():
            if key not in ("update", "env_steps") and isinstance(value, float) and math.isfinite(value):
                self.tensorboard.add_scalar(key, value, row["env_steps"])

    def bids(self, rows: list[dict]) -> None:
        self._append("bids", rows)

    def _append(self, name: str, rows: list[dict]) -> None:
        f, writer = self.files[name]
        writer.writerows(rows)
        f.flush()

    def checkpoint(self, name: str, payload: dict) -> None:
        tmp = self.path / "checkpoints" / f".{name}.pt"
        torch.save(payload, tmp)
        tmp.replace(self.path / "checkpoints" / f"{name}.pt")  # never a half-written checkpoint

    def close(self) -> None:
        self.tensorboard.close()
        for f, _ in self.files.values():
            f.close()


@dataclass
class Run:
    """A trained (or loaded) agent, a society or a monolithic policy, with its run folder."""

    path: Path
    config: Config
    agent: Society | Monolithic
    update: int = 0
    env_steps: int = 0
    options: dict | None = None
    """The fine-tuned option policies (``train_options``); frozen options are read from their run folders."""

    @property
    def metrics(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "metrics.csv")

    @property
    def bids(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "bids.csv")

    def evaluate(self, episodes: int = 100, seed: int = 0, device: str = "cpu"):
        """Returns and winners of ``episodes`` evaluation episodes (no dropout, sampled bids)."""
        from societal.learning.trainer import evaluate

        return evaluate(self.agent.to(device), self.config, episodes, seed, self.primitives(device))

    def primitives(self, device: str | torch.device = "cpu") -> LiteralActions | Options:
        """The primitives this run's agent chooses among (actions, or options as trained)."""
        from societal.learning.trainer import make_primitives

        return make_primitives(self.config, self.agent.num_primitives, torch.device(device), self.options)


def load(path: str | Path, checkpoint: str = "best") -> Run:
    """Load the agent of a run folder from ``checkpoints/{checkpoint}.pt``."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise SocietalError(f"{path} is not a run folder (no config.json)")
    if checkpoint not in ("best", "last"):
        raise SocietalError(f"unknown checkpoint {checkpoint!r}; allowed: best, last")
    file = path / "checkpoints" / f"{checkpoint}.pt"
    if not file.is_file():
        raise SocietalError(f"{path} has no checkpoint {file.name} (every run writes best.pt and last.pt as it starts)")
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict) or not ckpt.keys() >= CHECKPOINT_KEYS:
            raise ValueError("not a societal checkpoint")
        config = Config.from_dict(ckpt["config"])
        agent = (Society if config.agent == "society" else Monolithic)(**ckpt["agent_spec"])
        agent.load_state_dict(ckpt["agent"])
    except Exception as e:  # a corrupt or foreign file: one line, no traceback
        raise SocietalError(f"cannot read checkpoint {file}: {str(e).splitlines()[0] if str(e) else e!r}") from None
    return Run(path, config, agent, ckpt["update"], ckpt["env_steps"], ckpt.get("options"))
