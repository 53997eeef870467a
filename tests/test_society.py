"""The batched society equals a plain per-primitive computation with the same parameters."""

import numpy as np
import pytest
import torch
from torch import nn

from societal.environments.vector import make_vec
from societal.learning.ppo import PPO, minibatches
from societal.learning.rollout import Collector, Rollout
from societal.mechanisms import auction
from societal.networks import StackedModule
from societal.primitives import LiteralActions
from societal.society import Society, beta_log_prob_entropy, sample_beta


def linear_stack(net, theta: torch.Tensor, k: int) -> list[nn.Module]:
    """Learner k's rows of a StackedMLP as ordinary ``nn.Linear`` (and ``nn.ReLU``) layers."""
    layers = []
    for n, (w, b) in enumerate(net.layers(theta[k : k + 1].detach())):
        lin = nn.Linear(*w.shape[1:], dtype=theta.dtype)
        lin.weight.data.copy_(w[0].t())
        lin.bias.data.copy_(b[0, 0])
        layers += [lin] + ([nn.ReLU()] if n < net.relu_layers else [])
    return layers


def reference_modules(society: Society, k: int) -> tuple[nn.Sequential, nn.Sequential]:
    """Learner k's policy and value as ordinary ``nn.Linear`` stacks holding copies of its parameters."""
    theta, e = society.theta, society.encoder.size
    policy = linear_stack(society.encoder, theta[:, :e], k) + linear_stack(society.head, theta[:, e : society.split], k)
    return nn.Sequential(nn.Flatten(), *policy), nn.Sequential(nn.Flatten(), *linear_stack(society.value_net,
                                                                                             society.value_theta, k))


def beta_of(policy: nn.Module, obs: torch.Tensor) -> torch.distributions.Beta:
    out = policy(obs)
    mean, precision = torch.sigmoid(out[:, 0]), nn.functional.softplus(out[:, 1])
    return torch.distributions.Beta(mean * precision, (1 - mean) * precision)


@pytest.mark.parametrize("clone", [True, False])
def test_every_bidder_starts_uniform(clone):
    society = Society(obs_shape=(5,), num_primitives=3, redundancy=2, clone=clone, hidden=(16, 16))
    alpha, beta = society.distribution(torch.randn(7, 5))
    assert alpha.shape == (society.num_learners, 7)
    torch.testing.assert_close(alpha, torch.ones_like(alpha))
    torch.testing.assert_close(beta, torch.ones_like(beta))


@pytest.mark.parametrize("clone,redundancy", [(True, 2), (True, 3), (False, 2), (True, 1)])
def test_bidders_map_to_learners_and_primitives(clone, redundancy):
    society = Society((4,), 3, redundancy, clone)
    assert society.num_bidders == 3 * redundancy
    assert society.num_learners == (3 if clone else 3 * redundancy)
    per_learner = torch.arange(society.num_learners, dtype=torch.float)[:, None].expand(-1, 2)
    learner_of = society.bidders(per_learner)[0].long()
    n = torch.arange(society.num_bidders)
    assert learner_of.tolist() == (n % society.num_learners).tolist()
    assert society.primitive_of.tolist() == (n % 3).tolist()  # the original's ids: clone j of i is i + j·P


def trained_society(clone=True, obs_dim=6, primitives=3, hidden=(16,)):
    society = Society((obs_dim,), primitives, 2, clone, hidden)
    with torch.no_grad():
        society.theta.normal_(0, 0.5)
    return society


def test_distribution_equals_per_learner_modules():
    society = trained_society(hidden=(8, 8))
    obs = torch.randn(10, 6)
    alpha, beta = society.distribution(obs)
    values = society.values(obs)
    for k in range(society.num_learners):
        policy, value = reference_modules(society, k)
        ref = beta_of(policy, obs)
        torch.testing.assert_close(alpha[k], ref.concentration1)
        torch.testing.assert_close(beta[k], ref.concentration0)
        torch.testing.assert_close(values[k], value(obs)[:, 0])


def test_bids_follow_each_learners_beta_independently_per_clone():
    society = trained_society(primitives=2)
    obs = torch.eye(6)[torch.zeros(40_000, dtype=torch.long)]
    bids = society.bid(obs)  # [B, 4]: bidders 0, 1 and their clones 2, 3
    alpha, beta = society.distribution(obs[:1])
    for n in range(4):
        a, b = alpha[n % 2, 0], beta[n % 2, 0]
        mean, var = a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))
        assert bids[:, n].mean().item() == pytest.approx(mean.item(), abs=0.01)
        assert bids[:, n].var().item() == pytest.approx(var.item(), rel=0.05)
    assert abs(torch.corrcoef(bids[:, [0, 2]].t())[0, 1].item()) < 0.03  # clones draw independent bids
    assert ((bids > 0) & (bids < 1)).all()


@pytest.mark.parametrize("stream", [None, 0])
def test_beta_draws_have_the_beta_mean_variance_and_quantiles(stream):
    torch.manual_seed(0)
    alpha_beta = torch.tensor([[0.3, 0.6], [1.0, 1.0], [2.5, 0.8], [40.0, 9.0]]).expand(100_000, 4, 2).contiguous()
    draw = sample_beta(alpha_beta, None if stream is None else np.random.default_rng(stream))
    for (a, b), x in zip(alpha_beta[0].tolist(), draw.t()):
        exact = torch.distributions.Beta(torch.tensor(a), torch.tensor(b))
        assert x.mean().item() == pytest.approx(exact.mean.item(), abs=0.004)
        assert x.var().item() == pytest.approx(exact.variance.item(), rel=0.03)
        levels = torch.tensor([0.1, 0.5, 0.9])  # against torch's own Beta sampler
        assert torch.allclose(x.quantile(levels), exact.sample((100_000,)).quantile(levels), atol=0.01)
        assert ((x > 0) & (x < 1)).all()
    if stream is not None:  # the same stream state, the same draws
        assert torch.equal(draw, sample_beta(alpha_beta, np.random.default_rng(stream)))


def test_winner_is_the_first_highest_active_bid():
    bids = torch.rand(500, 6)
    active = torch.rand(500, 6) > 0.3
    active[:, :2] = True
    winner, first, second = auction(bids, active)
    masked = torch.where(active, bids, -1.0)
    assert torch.equal(winner, masked.argmax(1))
    assert torch.equal(first, masked.max(1).values)
    masked[torch.arange(500), winner] = -1
    assert torch.equal(second, masked.max(1).values.clamp(min=0))


def synthetic_rollout(society: Society, t=16, b=8, dropout=False) -> Rollout:
    obs = torch.eye(6)[torch.randint(0, 6, (t, b))]
    bids = society.bid(obs.reshape(t * b, -1)).reshape(t, b, -1)
    active = torch.rand(bids.shape) > (0.4 if dropout else -1)
    utility = torch.randn(bids.shape) * active
    return Rollout(obs, bids, active, bids.argmax(2), utility, torch.zeros(t, b), torch.zeros(t, b),
                   torch.zeros(t, b, dtype=torch.bool), torch.zeros(0), t * b)


@pytest.mark.parametrize("t", [1, 16])  # fewer samples than states, and more
def test_a_rollouts_advantages_read_the_values_of_what_the_society_sees(t):
    torch.manual_seed(0)
    society, b = Society((6,), 2), 4
    society.theta.data.normal_()
    codes = torch.rand(10, 6)  # 10 coded states
    one_hot, coded = synthetic_rollout(society, t, b), synthetic_rollout(society, t, b)
    states = torch.randint(0, 10, (t, b, 1))
    one_hot.obs = torch.randint(0, 6, (t, b, 1))
    coded.obs, coded.codes = states, codes
    for rollout, seen in ((one_hot, torch.eye(6)[one_hot.obs[..., 0]]), (coded, codes[states[..., 0]])):
        samples = rollout.samples(society)
        value = society.values(seen.flatten(0, 1)).repeat_interleave(society.samples_per_learner, 1)
        torch.testing.assert_close(samples.advantage, samples.target - value)


HP = dict(clip=0.2, entropy=0.1, value_l2=1e-3, max_grad_norm=0.5, minibatch=24)


def reference_update(society: Society, rollout: Rollout, order_seed: int, lr_scale=1.0, policy_lr=1e-2, value_lr=5e-3):
    """K separate PPO learners: torch.distributions, torch.optim.Adam, clip_grad_norm_, one at a time."""
    k, c = society.num_learners, society.samples_per_learner
    t, b, _ = rollout.bids.shape
    obs = rollout.obs.reshape(t * b, -1)

    def per_learner(x):
        return x.reshape(t * b, c, k).permute(2, 0, 1).reshape(k, t * b * c)

    bids, utility, valid = per_learner(rollout.bids), per_learner(rollout.utility), per_learner(rollout.active)
    torch.manual_seed(order_seed)
    batches = list(zip(*minibatches(valid, HP["minibatch"])))
    out = []
    for j in range(k):
        policy, value = reference_modules(society, j)
        popt = torch.optim.Adam(policy.parameters(), lr=policy_lr * lr_scale)
        vopt = torch.optim.Adam(value.parameters(), lr=value_lr * lr_scale)
        o = obs.repeat_interleave(c, 0)
        with torch.no_grad():
            old = beta_of(policy, o).log_prob(bids[j].clamp(1e-6, 1 - 1e-6))
            adv = utility[j] - value(o)[:, 0]
            v = valid[j]
            adv = (adv - adv[v].mean()) / (adv[v].std() + torch.finfo(adv.dtype).eps)
        for index, weight in batches:
            idx = index[j][weight[j] > 0]
            if len(idx) == 0:
                continue
            vopt.zero_grad()
            vloss = ((value(o[idx])[:, 0] - utility[j, idx]) ** 2).mean()
            vloss = vloss + HP["value_l2"] * sum(p.pow(2).sum() for p in value.parameters())
            vloss.backward()
            vopt.step()
            popt.zero_grad()
            dist = beta_of(policy, o[idx])
            ratio = torch.exp(dist.log_prob(bids[j, idx].clamp(1e-6, 1 - 1e-6)) - old[idx])
            a = adv[idx]
            ploss = -torch.min(ratio * a, ratio.clamp(0.8, 1.2) * a).mean() - HP["entropy"] * dist.entropy().mean()
            ploss.backward()
            nn.utils.clip_grad_norm_(policy.parameters(), HP["max_grad_norm"])
            popt.step()
        out.append((policy, value))
    return out


@pytest.mark.parametrize("clone,dropout", [(True, False), (False, False), (True, True)])
def test_one_ppo_update_equals_independent_learners(clone, dropout):
    torch.set_default_dtype(torch.float64)
    try:
        society = trained_society(clone=clone)
        rollout = synthetic_rollout(society, dropout=dropout)
        expected = reference_update(society, rollout, order_seed=7, lr_scale=0.5)
        ppo = PPO(society, policy_lr=1e-2, value_lr=5e-3, **HP)
        torch.manual_seed(7)
        ppo.update(rollout.samples(society), lr_scale=0.5)
        for k, (policy, value) in enumerate(expected):
            got_policy, got_value = reference_modules(society, k)
            for p, q in zip(list(policy.parameters()) + list(value.parameters()),
                            list(got_policy.parameters()) + list(got_value.parameters())):
                torch.testing.assert_close(q, p, rtol=1e-7, atol=1e-9)
    finally:
        torch.set_default_dtype(torch.float32)


def test_beta_terms_match_torch_distributions_and_gradcheck():
    a = (torch.rand(30, dtype=torch.float64) * 4 + 0.1).requires_grad_()
    b = (torch.rand(30, dtype=torch.float64) * 4 + 0.1).requires_grad_()
    x = torch.rand(30, dtype=torch.float64)
    log_prob, entropy = beta_log_prob_entropy(a, b, x)
    dist = torch.distributions.Beta(a, b)
    torch.testing.assert_close(log_prob, dist.log_prob(x))
    torch.testing.assert_close(entropy, dist.entropy())
    assert torch.autograd.gradcheck(lambda a, b: beta_log_prob_entropy(a, b, x), (a, b))


def test_bids_of_exactly_zero_or_one_have_finite_log_probability():
    log_prob, _ = beta_log_prob_entropy(torch.tensor([0.5, 2.0]), torch.tensor([3.0, 0.7]), torch.tensor([0.0, 1.0]))
    assert torch.isfinite(log_prob).all()  # the 2020 code took log(0) here


def test_stacked_module_equals_per_learner_modules():
    from torch.nn.utils import vector_to_parameters

    from societal.networks import MinigridCNN

    net = StackedModule(MinigridCNN)
    theta = torch.empty(3, net.size)
    net.init_(theta)
    assert not torch.equal(theta[0], theta[1])  # each learner gets its own initialisation
    shared, own = torch.randint(0, 11, (5, 7, 7, 3)), torch.randint(0, 11, (3, 5, 7, 7, 3))
    out_shared, out_own = net(theta, shared, 1), net(theta, own, 2)
    for k in range(3):
        module = MinigridCNN()
        vector_to_parameters(theta[k], module.parameters())
        torch.testing.assert_close(out_shared[k], module(shared))
        torch.testing.assert_close(out_own[k], module(own[k]))
    with pytest.raises(ValueError, match="buffers"):
        StackedModule(lambda: nn.BatchNorm1d(3))


def test_a_cnn_society_starts_uniform_and_learns_from_images():
    society = Society((7, 7, 3), 3, network="minigrid_cnn")
    obs = torch.randint(0, 11, (16, 7, 7, 3)).float()
    alpha, beta = society.distribution(obs)
    torch.testing.assert_close(alpha, torch.ones(3, 16))
    torch.testing.assert_close(beta, torch.ones(3, 16))
    t, b = 4, 16
    images = torch.randint(0, 11, (t, b, 7, 7, 3)).float()
    bids = society.bid(images.flatten(0, 1)).reshape(t, b, -1)
    rollout = Rollout(images, bids, torch.ones_like(bids, dtype=torch.bool), bids.argmax(2), torch.randn(bids.shape),
                      torch.zeros(t, b), torch.zeros(t, b), torch.zeros(t, b, dtype=torch.bool), torch.zeros(0), t * b)
    before = society.theta.detach().clone()
    PPO(society, policy_lr=1e-3, value_lr=1e-3, **HP).update(rollout.samples(society))
    assert not torch.equal(before[:, : society.split], society.theta[:, : society.split])


def test_stacked_linear_layers_with_and_without_bias():
    make = lambda: nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2))  # noqa: E731
    net = StackedModule(make)
    theta = torch.empty(2, net.size)
    net.init_(theta)
    x = torch.randn(5, 4)
    for k in range(2):
        module = make()
        torch.nn.utils.vector_to_parameters(theta[k], module.parameters())
        torch.testing.assert_close(net(theta, x)[k], module(x))
        torch.testing.assert_close(net(theta, x.expand(2, 5, 4), 2)[k], module(x))
    with pytest.raises(ValueError, match="cannot stack"):
        StackedModule(lambda: nn.Sequential(nn.Conv1d(1, 1, 1)))


def test_minibatches_give_each_learner_each_of_its_valid_samples_once():
    torch.manual_seed(0)
    valid = torch.rand(3, 50) < torch.tensor([[1.0], [0.6], [0.1]])
    index, weight = minibatches(valid, 8)
    for k in range(3):
        taken = index[:, k][weight[:, k] > 0]
        assert sorted(taken.tolist()) == valid[k].nonzero()[:, 0].tolist()
        sums = weight[:, k].sum(1)
        assert torch.allclose(sums[sums > 0], torch.ones(1)) and (sums > 0).sum() == -(-int(valid[k].sum()) // 8)
    assert not torch.equal(index[:, 0].flatten()[:50], torch.arange(50))  # shuffled


class Stepped(LiteralActions):
    literal = False  # the collector steps the env through its observations


@pytest.mark.parametrize("settings", [dict(dropout=True),
                                      dict(dropout=True, price="mean", explore=0.2, bonus=0.1,
                                           bootstrap_truncated=True)])
def test_a_table_collects_the_same_auctions_on_state_indices_as_on_observations(settings):
    def rollout(primitives):
        torch.manual_seed(3)
        env = make_vec("FrozenLake-v1", {"max_episode_steps": 6}, 32, torch.device("cpu"))  # slippery, cut short
        society = Society((16,), 4)
        society.theta.data.normal_()  # bids that differ from state to state
        collector = Collector(society, primitives, env, "ccv", 0.99, reward_shift=0.05, seed=1, **settings)
        return collector.collect(40), collector

    (indexed, a), (observed, b) = rollout(LiteralActions(4)), rollout(Stepped(4))
    assert a.indexed and not b.indexed
    assert indexed.last.any() and indexed.obs.dtype == torch.long and (indexed.resale != 0).any()
    for field in ("obs", "bids", "active", "winner", "utility", "residual", "resale", "last"):
        assert torch.equal(getattr(indexed, field), getattr(observed, field)), field
    assert torch.equal(a.obs[:, 0], b.obs.argmax(1)) and torch.equal(a.wins, b.wins)


@pytest.mark.parametrize("network", ["mlp", "table"])
def test_a_table_learns_in_a_state_without_moving_any_other(network):
    from societal.learning.ppo import Samples

    torch.manual_seed(0)
    society = Society((5,), 2, network=network)
    society.init_bids(0.9, 10.0)
    obs = torch.zeros(64, 1, dtype=torch.long)  # every sample in state 0, every utility low
    k, c = society.num_learners, society.samples_per_learner
    utility = torch.zeros(k, 64 * c)
    samples = Samples(obs, torch.full((k, 64 * c), 0.9), utility, utility - society.values(obs).detach()
                      .repeat_interleave(c, 1) - 0.5, torch.ones(k, 64 * c, dtype=torch.bool), c)
    ppo = PPO(society, policy_lr=1e-2, value_lr=1e-2, **HP)
    for _ in range(5):
        ppo.update(samples)
    alpha, beta = society.distribution(torch.arange(5)[:, None])
    mean = (alpha / (alpha + beta)).detach()
    assert (mean[:, 0] < 0.89).all()  # state 0 learned to bid less
    others = (mean[:, 1:] - 0.9).abs().max()
    assert others < 1e-6 if network == "table" else others > 1e-3  # a shared layer carries it to the others
