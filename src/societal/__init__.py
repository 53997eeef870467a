"""societal: decentralized reinforcement learning with societies of bidding primitives.

    import societal
    run = societal.train("societal/Chain-v0", mechanism="ccv", steps=2_000_000, seed=0)
    print(run.metrics.tail())
    run = societal.load(run.path)        # evaluate, transfer; societal.train(resume=run.path) continues it

Importing ``societal`` registers the ``societal/`` environments with Gymnasium and nothing more: torch and
the rest load with the first name used (so that ``societal --help`` answers at once), Ray only with ``sweep``.
"""

import importlib

import societal.environments  # noqa: F401  (registers the societal/ tasks)

_HOMES = {
    "Config": "config", "PRESETS": "config",
    "Diverged": "errors", "SocietalError": "errors", "SocietalWarning": "errors", "Stopped": "errors",
    "evaluate": "evaluation", "Evaluation": "evaluation", "Assessment": "exact",
    "train": "learning.loop", "MECHANISMS": "mechanisms", "utilities": "mechanisms",
    "Run": "run", "load": "run", "Society": "society", "sweep": "distributed",
}


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module 'societal' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"societal.{_HOMES[name]}"), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


__all__ = sorted(_HOMES)
