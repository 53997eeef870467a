"""The PPO update with gradients by hand (and compiled) equals the update through autograd."""

import copy
import dataclasses
import os
import subprocess
import sys

import pytest
import torch

from societal.learning import decompositions
from societal.learning.ppo import PPO, Samples
from societal.monolithic import Monolithic
from societal.networks import StackedMLP
from societal.society import Society

HP = dict(policy_lr=1e-2, value_lr=5e-3, clip=0.2, entropy=0.1, value_l2=1e-3, max_grad_norm=0.5, minibatch=64)


def society_samples(clone: bool, hidden: tuple, dropout: bool, indices: bool = False,
                    network: str = "mlp") -> tuple[Society, Samples]:
    torch.manual_seed(0)
    society = Society((6,), 3, 2, clone, hidden, network=network)
    with torch.no_grad():
        society.theta.normal_(0, 0.5)
    states = torch.randint(0, 6, (300, 1))
    obs = states if indices else torch.eye(6)[states[:, 0]]
    k, c = society.num_learners, society.samples_per_learner
    bids = torch.rand(k, 300 * c)
    utility = torch.randn(k, 300 * c)
    valid = torch.rand(k, 300 * c) > (0.4 if dropout else -1)
    return society, Samples(obs, bids, utility, utility - society.values(obs).detach().repeat_interleave(c, 1),
                            valid, c)


def monolithic_samples(factorized: bool = False) -> tuple[Monolithic, Samples]:
    torch.manual_seed(0)
    agent = Monolithic((6,), 4, (16, 16), factorized=factorized)
    with torch.no_grad():
        agent.theta.normal_(0, 0.5)
    obs = torch.eye(6)[torch.randint(0, 6, (300,))]
    target = torch.randn(1, 300)
    return agent, Samples(obs, torch.randint(0, 4, (1, 300)).float(), target, target - 0.1,
                          torch.ones(1, 300, dtype=torch.bool))


CASES = {
    "cloned": lambda: society_samples(True, (16,), False),
    "independent, dropout": lambda: society_samples(False, (16,), True),
    "two hidden layers": lambda: society_samples(True, (8, 8), True),
    "state indices": lambda: society_samples(True, (8, 8), False, indices=True),
    "table": lambda: society_samples(False, (), True, network="table"),
    "table, state indices": lambda: society_samples(True, (), False, indices=True, network="table"),
    "monolithic": monolithic_samples,
    "factorized": lambda: monolithic_samples(factorized=True),
}


@pytest.mark.parametrize("case", CASES)
def test_gradients_by_hand_equal_autograd(case):
    agent, samples = CASES[case]()
    by_hand, by_autograd = PPO(agent, **HP), PPO(copy.deepcopy(agent), **HP)
    assert by_hand.gradient == by_hand.analytic_gradient
    by_autograd.gradient = by_autograd.autograd_gradient
    stats = []
    for ppo in (by_hand, by_autograd):
        torch.manual_seed(1)  # the same minibatches
        stats.append([ppo.update(samples) for _ in range(3)])
    torch.testing.assert_close(by_hand.agent.theta, by_autograd.agent.theta, rtol=0, atol=1e-6)
    torch.testing.assert_close(by_hand.v, by_autograd.v, rtol=1e-4, atol=1e-10)
    for hand, auto in zip(*stats):
        assert hand == pytest.approx(auto, rel=1e-5)


@pytest.mark.parametrize("case", ["independent, dropout", "monolithic", "factorized"])
def test_the_compiled_update_equals_the_eager_one(case):
    agent, samples = CASES[case]()
    eager, compiled = PPO(agent, **HP), PPO(copy.deepcopy(agent), **HP, compile=True)
    for ppo in (eager, compiled):
        torch.manual_seed(1)
        ppo.update(samples)  # compiled: eager, while compiling in the background starts
        if ppo is compiled:
            compiled.background.wait()
        for _ in range(3):
            ppo.update(samples)
    assert compiled.compiled is not None  # switched to the compiled step
    torch.testing.assert_close(compiled.agent.theta, eager.agent.theta, rtol=0, atol=1e-6)


def test_the_compiled_step_runs_where_its_arguments_fit_and_the_eager_one_elsewhere():
    agent, samples = CASES["cloned"]()
    compiled = PPO(agent, **HP, compile=True)
    compiled.update(samples)
    compiled.background.wait()
    compiled.update(samples)  # switches to the compiled step
    calls, inner = [], compiled.compiled.compiled
    compiled.compiled.compiled = lambda *args: calls.append(1) or inner(*args)
    compiled.update(samples)
    minibatches = -(-int(samples.valid.sum(1).max()) // HP["minibatch"])
    assert len(calls) == minibatches
    c = samples.per_obs
    fewer = Samples(samples.obs[:100], *(x[:, : 100 * c] for x in (samples.action, samples.target,
                                                                     samples.advantage, samples.valid)), c)
    eager = PPO(copy.deepcopy(compiled.agent), **HP)
    eager.load_state_dict(compiled.state_dict())
    for ppo in (compiled, eager):
        torch.manual_seed(2)
        ppo.update(fewer)
    assert len(calls) == minibatches  # no compiled call for samples of another shape
    torch.testing.assert_close(compiled.agent.theta, eager.agent.theta, rtol=0, atol=0)


def test_without_a_cpp_compiler_a_compiling_run_says_so_and_trains_eagerly(tmp_path):
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler"), "TMPDIR": str(tmp_path)}
    argv = ["train", "societal/Chain-v0", "--steps", "40000", "--compile", "--quiet", "--out", str(tmp_path / "run"),
            "--set", "eval_episodes=10"]
    done = subprocess.run([sys.executable, "-m", "societal", *argv], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Exception in thread" not in done.stderr
    assert "compiling PPO._step failed, training goes on without it: InvalidCxxCompiler" in done.stderr
    assert "env steps, evaluation return" in done.stdout  # trained to the end and evaluated


def test_the_compiled_steps_digamma_and_trigamma_equal_torchs():
    x = torch.cat([torch.zeros(1), torch.logspace(-8, 7, 10_000), 10 * torch.rand(10_000)])
    for ours, torchs in ((decompositions.digamma, torch.digamma),
                         (decompositions.trigamma, lambda x: torch.polygamma(1, x))):
        exact = torchs(x.double())
        assert ours(torch.zeros(1)) == torchs(torch.zeros(1))  # ±∞ at 0, as torch's
        error = (ours(x).double() - exact).abs() / exact.abs().clamp(min=1)
        assert error[1:].max() < 1e-6  # torch's float32 functions: 7e-7 (digamma), 4e-7 (trigamma)


def test_the_compiled_step_computes_small_matrix_products_as_sums_and_leaves_large_ones_to_torch():
    table = decompositions.DECOMPOSITIONS
    a, b, bias = torch.randn(2, 6, 16), torch.randn(2, 16, 2), torch.randn(2, 1, 2)
    torch.testing.assert_close(table[torch.ops.aten.bmm.default](a, b), torch.bmm(a, b))
    torch.testing.assert_close(table[torch.ops.aten.baddbmm.default](bias, a, b), torch.baddbmm(bias, a, b))
    large = torch.randn(6, 256, 16)
    assert table[torch.ops.aten.bmm.default](large, b.repeat(3, 1, 1)) is NotImplemented
    assert table[torch.ops.aten.digamma.default](torch.rand(10)) is NotImplemented  # few: torch's is compiled
    assert torch.equal(table[torch.ops.aten.digamma.default](x := torch.rand(300)), decompositions.digamma(x))


def test_the_compiled_auction_takes_the_two_highest_bids_as_topk_does():
    top_two = decompositions.DECOMPOSITIONS[torch.ops.aten.topk.default]
    bids = torch.rand(5, 64, 7).masked_fill(torch.rand(5, 64, 7) < 0.3, -1.0)
    values, indices = top_two(bids, 2)
    expected = bids.topk(2)
    assert torch.equal(values, expected.values) and torch.equal(indices, expected.indices)
    assert top_two(bids, 3) is NotImplemented and top_two(bids, 2, dim=1) is NotImplemented


def test_state_indices_stand_for_one_hot_inputs():
    net = StackedMLP([6, 8, 3], relu_layers=1)
    theta = torch.randn(2, net.size)
    states = torch.randint(0, 6, (2, 50, 1))
    one_hot = torch.eye(6)[states[..., 0]]
    torch.testing.assert_close(net(theta, states, 2), net(theta, one_hot, 2))
    torch.testing.assert_close(net(theta, states[0], 1), net(theta, one_hot[0], 1))
    grad_out = torch.randn(2, 50, 3)
    (out, by_index), (_, dense) = net.forward_saving(theta, states), net.forward_saving(theta, one_hot)
    torch.testing.assert_close(out, net(theta, one_hot, 2))
    torch.testing.assert_close(net.backward(theta, by_index, grad_out), net.backward(theta, dense, grad_out))


def test_a_factorized_policy_is_one_mlp_per_choice():
    agent, samples = monolithic_samples(factorized=True)
    net, theta = agent.policy_net, agent.theta[:, : agent.split]
    logits = agent.logits(samples.obs)[0]
    for p in range(4):  # choice p's logit is the p-th MLP's output alone
        own = net.one(theta[:, p * net.one.size : (p + 1) * net.one.size], samples.obs)[0, :, 0]
        torch.testing.assert_close(logits[:, p], own)


def test_state_indices_stand_for_their_codes():
    """A task that codes its states (two-hot) trains on state indices; the update equals the one on the codes."""
    society, samples = society_samples(True, (8, 8), True, indices=True)
    codes = torch.rand(6, 6)
    coded, dense = PPO(society, **HP, codes=codes), PPO(copy.deepcopy(society), **HP)
    for ppo, obs in ((coded, samples.obs), (dense, codes[samples.obs[:, 0]])):
        torch.manual_seed(1)
        ppo.update(dataclasses.replace(samples, obs=obs))
    torch.testing.assert_close(coded.agent.theta, dense.agent.theta, rtol=0, atol=1e-6)
