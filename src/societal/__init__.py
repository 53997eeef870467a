"""societal: decentralized reinforcement learning with societies of bidding primitives.

    import societal
    run = societal.train("societal/Chain-v0", mechanism="ccv", steps=2_000_000, seed=0)
    print(run.metrics.tail())
    run = societal.load(run.path)        # evaluate, transfer; societal.train(resume=run.path) continues it
"""

import pandas as pd

import societal.environments  # noqa: F401  (registers the societal/ tasks)
from societal.config import PRESETS, Config
from societal.errors import Diverged, SocietalError, SocietalWarning, Stopped
from societal.evaluation import evaluate
from societal.learning.loop import train
from societal.mechanisms import MECHANISMS, utilities
from societal.run import Run, load
from societal.society import Society


def sweep(env: str, grid: dict[str, list], **kwargs) -> pd.DataFrame:
    """Train over every combination of ``grid`` and seeds on Ray, one Tune trial per run
    (``societal.distributed.sweep``; Ray is imported only when this is called)."""
    from societal.distributed import sweep as on_ray

    return on_ray(env, grid, **kwargs)


__all__ = ["MECHANISMS", "PRESETS", "Config", "Diverged", "Run", "SocietalError", "SocietalWarning", "Society",
           "Stopped", "evaluate", "load", "sweep", "train", "utilities"]
