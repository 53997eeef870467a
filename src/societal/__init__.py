"""societal: decentralized reinforcement learning with societies of bidding primitives.

    import societal
    run = societal.train("societal/Chain-v0", mechanism="ccv", steps=2_000_000, seed=0)
    print(run.metrics.tail())
    run = societal.load(run.path)        # evaluate, continue, transfer
"""

import societal.environments  # noqa: F401  (registers societal/Bandit-v0, Chain-v0, Duality-v0)
from societal.config import Config
from societal.errors import SocietalError
from societal.learning.trainer import evaluate, train
from societal.mechanisms import MECHANISMS, utilities
from societal.run import Run, load
from societal.society import Society

__all__ = ["MECHANISMS", "Config", "Run", "SocietalError", "Society", "evaluate", "load", "train", "utilities"]
