"""The follow-up's modularity criterion, measured on a PPO update: a society's feedback is independent across
primitives given the previous weights; a categorical policy's (monolithic or factorized) is not."""

import pytest
import torch

from societal.learning.ppo import PPO, Samples
from societal.modularity import changed, gradient_dependence, policy_parts
from societal.monolithic import Monolithic
from societal.society import Society

HP = dict(policy_lr=1e-2, value_lr=5e-3, clip=0.2, entropy=0.1, value_l2=1e-3, max_grad_norm=0.5, minibatch=64)


def samples_for(agent, actions: torch.Tensor, per_obs: int) -> Samples:
    torch.manual_seed(1)
    obs = torch.rand(50, 10)
    k, m = len(agent.theta), 50 * per_obs
    target = torch.rand(k, m)
    return Samples(obs, actions, target, torch.randn(k, m), torch.ones(k, m, dtype=torch.bool), per_obs)


def dependence(agent) -> tuple[list[float], list[float]]:
    """The entries on and off the diagonal (between primitives; a shared encoder left out)."""
    if isinstance(agent, Society):
        c = agent.samples_per_learner
        samples = samples_for(agent, torch.rand(len(agent.theta), 50 * c), c)
    else:
        samples = samples_for(agent, torch.randint(0, 4, (1, 50)).float(), 1)
    d = gradient_dependence(PPO(agent, **HP), samples)
    own = [d[j][j] for j in d if j != "shared"]
    others = [d[j][k] for j in d for k in d if j != k and "shared" not in (j, k)]
    return own, others


def test_a_society_meets_the_criterion_and_ppo_does_not():
    torch.manual_seed(0)
    own, others = dependence(Society((10,), 4, 2, True, (20, 20)))
    assert min(own) > 1e-3 and max(others) == 0.0
    for factorized in (False, True):
        torch.manual_seed(0)
        own, others = dependence(Monolithic((10,), 4, (20, 20), factorized=factorized))
        assert min(own) > 1e-3 and min(others) > 1e-4, factorized


def test_parts_cover_every_policy_weight_once():
    for agent in (Society((10,), 4, 2, True, (20,)), Monolithic((10,), 4, (20, 20)),
                  Monolithic((10,), 4, (20, 20), factorized=True)):
        cols = torch.cat([c + row * agent.split for row, c in policy_parts(agent).values()])
        assert sorted(cols.tolist()) == list(range(agent.split * len(agent.theta)))
    agent = Monolithic((10,), 4, (20,), factorized=True)
    after = agent.theta.detach().clone()
    after[0, policy_parts(agent)["p2"][1][:10]] += 0.01
    share = 10 / agent.policy_net.one.size
    assert changed(agent.theta.detach(), after, policy_parts(agent)) == {
        "p0": (0.0, 0.0), "p1": (0.0, 0.0), "p2": (pytest.approx(0.01 * share), pytest.approx(100 * share)),
        "p3": (0.0, 0.0)}
