"""A trained (or loaded) agent with its run folder: ``load``, and what can be done with a run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from societal.config import Config
from societal.environments.tabular import finite_mdp
from societal.environments.vector import make
from societal.errors import SocietalError
from societal.evaluation import Evaluation, evaluate
from societal.exact import Assessment, assess, market_task, run_task
from societal.imports import import_recorded
from societal.monolithic import Monolithic
from societal.primitives import LiteralActions, Options, make_primitives
from societal.society import Society
from societal.storage import checkpoint_file, load_weights, read_checkpoint, read_config


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
    checkpoint: str = "last"
    """Which checkpoint the weights are from: ``best`` (the highest evaluation return so far) or ``last``."""
    eval_return: float = float("nan")
    """The evaluation return that made a ``best`` checkpoint best (NaN for ``last``)."""

    @property
    def metrics(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "metrics.csv")

    @property
    def bids(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "bids.csv")

    def evaluate(self, episodes: int = 100, seed: int = 0, device: str = "cpu") -> Evaluation:
        """Returns and winners of ``episodes`` evaluation episodes, acting as the run's evaluation does."""
        return evaluate(self.agent.to(device), self.config, episodes, seed, self.primitives(device))

    def assess(self) -> Assessment:
        """The exact assessment of the agent on its task (``societal.exact``): returns of the task's own rewards,
        within its time limit unless the run treats it as a convenience; bids against the Q* of the rewards its
        market is paid. Raises ``SocietalError`` saying why where there is none: the task has no transition table,
        or the primitives are options."""
        c = self.config
        if c.options:
            raise SocietalError("no exact assessment: the primitives are options, whose policies the table of "
                                f"{c.env} does not describe")
        mdp = finite_mdp(make(c.env, **c.env_kwargs))
        if mdp is None:
            raise SocietalError(f"no exact assessment: {c.env} has no transition table (only finite tasks with one, "
                                "such as the societal/ tables and Gymnasium's toy-text tasks, can be judged exactly)")
        return assess(self.agent, run_task(mdp, c), c.gamma, market_task(mdp, c))

    def primitives(self, device: str | torch.device = "cpu") -> LiteralActions | Options:
        """The primitives this run's agent chooses among (actions, or options as trained)."""
        primitives = make_primitives(self.config, self.agent.num_primitives, torch.device(device))
        if self.options is not None and isinstance(primitives, Options):
            load_weights(primitives.net, self.options, checkpoint_file(self.path, self.checkpoint), "its options")
        return primitives


def agent_of(config: Config, checkpoint: dict, file: Path) -> Society | Monolithic:
    """The agent the checkpoint ``file`` holds (its weights loaded)."""
    try:
        agent = (Society if config.agent == "society" else Monolithic)(**checkpoint["agent_spec"])
    except (TypeError, ValueError, KeyError) as e:
        raise SocietalError(f"cannot rebuild the agent of checkpoint {file}: {str(e).splitlines()[0]}") from None
    load_weights(agent, checkpoint["agent"], file, "the agent of its agent_spec")
    return agent


def load(path: str | Path, checkpoint: str = "last") -> Run:
    """The agent of a run folder from ``checkpoints/{checkpoint}.pt`` (``last``: the latest weights, the policy its
    budget trained; ``best``: those of the highest evaluation return, the later of equal ones, which can be the
    untrained policy where training did not beat its first evaluation); the folder's ``config.json`` says what
    the run is, and a checkpoint of another run is refused. ``Run.checkpoint`` and ``Run.env_steps`` say which."""
    path = Path(path)
    config = read_config(path)
    import_recorded(config.env, config.imports, path)
    ckpt = read_checkpoint(path, checkpoint, config)
    agent = agent_of(config, ckpt, checkpoint_file(path, checkpoint))
    return Run(path, config, agent, ckpt["update"], ckpt["env_steps"], ckpt.get("options"), checkpoint,
               ckpt.get("eval_return", float("nan")))
