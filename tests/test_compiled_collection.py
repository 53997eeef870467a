"""A society's auction step on a table task (``Collector.table_step``), eager and compiled, collects the rollouts
the general auction step collects."""

import pytest
import torch

from societal.environments.vector import make, make_vec, obs_shape
from societal.learning.rollout import Collector
from societal.primitives import LiteralActions
from societal.society import Society


def rollouts(env_id: str, compile: bool, dropout: bool = False, price: str = "sampled", plain: bool = True
             ) -> tuple[Collector, list]:
    """Three rollouts after two; ``plain``: with ``table_step`` (else the general ``step``)."""
    torch.manual_seed(0)
    env = make(env_id)
    society = Society(obs_shape(env.observation_space), env.action_space.n)
    vec = make_vec(env_id, {}, 64, torch.device("cpu"))
    collector = Collector(society, LiteralActions(env.action_space.n), vec, "ccv", 0.99, dropout, seed=1, price=price,
                          compile=compile)
    collector.plain = plain
    collector.collect(8)
    collector.collect(8)  # starts compiling
    collector.finish_compiling()
    return collector, [collector.collect(8) for _ in range(3)]


CASES = pytest.mark.parametrize("env_id, settings", [
    ("societal/Chain-v0", {}),  # one start state, one outcome per action
    ("FrozenLake-v1", {"dropout": True}),  # slippery: three outcomes per action
    ("Taxi-v4", {"price": "mean"}),  # random start states; prices from the bids' means
])
FIELDS = ("obs", "winner", "last", "active", "bids", "utility", "residual", "episode_returns")


@CASES
def test_the_table_step_collects_what_the_general_step_does(env_id, settings):
    _, general = rollouts(env_id, False, plain=False, **settings)
    _, table = rollouts(env_id, False, **settings)
    for ours, theirs in zip(table, general):
        for field in FIELDS:
            assert torch.equal(getattr(ours, field), getattr(theirs, field))


@CASES
def test_the_compiled_table_step_collects_what_the_eager_one_does(env_id, settings):
    _, eager = rollouts(env_id, False, **settings)
    compiled, rollout = rollouts(env_id, True, **settings)
    assert compiled.compiled is not None and compiled.market_step is compiled.compiled
    for ours, theirs in zip(rollout, eager):
        for field in FIELDS:
            torch.testing.assert_close(getattr(ours, field), getattr(theirs, field), rtol=0, atol=1e-6)
