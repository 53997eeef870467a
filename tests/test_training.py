"""Training end to end: run outputs, determinism, loading, and learning on the paper's tasks."""

import json

import gymnasium as gym
import pandas as pd
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import societal
from societal.cli import main
from societal.config import Config
from societal.errors import SocietalError
from societal.learning.choices import option_samples

FAST = dict(steps=20_000, eval_every=2, eval_episodes=20, progress=False)


def test_a_run_writes_every_output(tmp_path):
    run = societal.train("societal/Chain-v0", out=tmp_path / "run", **FAST)
    files = {p.relative_to(run.path).as_posix() for p in run.path.rglob("*") if p.is_file()}
    assert {"config.json", "metrics.csv", "bids.csv", "plots/returns.png", "plots/bids.png",
            "checkpoints/last.pt", "checkpoints/best.pt"} <= files
    events = EventAccumulator(str(run.path / "tensorboard"))
    events.Reload()
    updates = run.metrics.dropna(subset=["value_loss"])
    assert len(updates) > 2 and [e.step for e in events.Scalars("value_loss")] == updates.env_steps.tolist()
    assert {"eval_return_mean", "return_mean", "env_steps_per_s"} <= set(events.Tags()["scalars"])
    assert json.loads((run.path / "config.json").read_text())["mechanism"] == "ccv"
    m = run.metrics
    assert m.env_steps.iloc[-1] >= 20_000 and m.env_steps.is_monotonic_increasing
    for column in ("auction_steps", "wall_s", "return_mean", "return_std", "return_min", "return_max",
                   "winner_utility", "conservation_residual", "eval_return_mean"):
        assert column in m
    assert (m.conservation_residual.dropna().abs() < 1e-6).all()  # ccv conserves credit
    bids = run.bids
    assert set(bids.state) == set(range(6)) and set(bids.learner) == {0, 1}  # every state, visited or not
    assert set(bids[bids.visits > 0].state) <= {0, 1, 2, 3, 4}  # the goal is entered, never left
    assert list(bids.action.unique()) == ["Left", "Right"]
    assert bids.q_star.notna().all() and bids.mean_bid.between(0, 1).all()


def test_vickrey_creates_credit(tmp_path):
    run = societal.train("societal/Chain-v0", mechanism="v", out=tmp_path / "v", **FAST)
    assert (run.metrics.conservation_residual.dropna() > 0).all()


def test_same_seed_same_metrics(tmp_path):
    runs = [societal.train("societal/Bandit-v0", dropout=True, seed=3, out=tmp_path / f"r{i}", **FAST)
            for i in range(2)]
    timing = ["wall_s", "collect_s", "update_s", "env_steps_per_s"]
    pd.testing.assert_frame_equal(runs[0].metrics.drop(columns=timing), runs[1].metrics.drop(columns=timing))
    pd.testing.assert_frame_equal(runs[0].bids, runs[1].bids)
    other = societal.train("societal/Bandit-v0", dropout=True, seed=4, out=tmp_path / "r2", **FAST)
    assert not other.metrics.return_mean.equals(runs[0].metrics.return_mean)


def test_load_restores_the_society(tmp_path):
    run = societal.train("societal/Duality-v0", out=tmp_path / "run", **FAST)
    loaded = societal.load(run.path, "last")
    torch.testing.assert_close(loaded.agent.theta, run.agent.theta)
    assert loaded.config == run.config and loaded.env_steps == run.env_steps
    result = loaded.evaluate(episodes=7)
    assert len(result.returns) == 7 and result.wins.sum() == 70  # 7 episodes × 10 auctions


def test_settings_take_lists_and_paths_as_python_callers_write_them(tmp_path):
    config = Config(options=[tmp_path / "red", "blue"], hidden=[32, 32], init_from=tmp_path).validate()
    assert config.options == (str(tmp_path / "red"), "blue") and config.hidden == (32, 32)
    assert config.init_from == str(tmp_path) and Config.from_dict(config.to_dict()) == config
    with pytest.raises(SocietalError, match="hidden must be a tuple of ints"):
        Config(hidden=[32, "wide"]).validate()


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    run = societal.train("societal/Bandit-v0", out=tmp_path / "run", **FAST)
    (run.path / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SocietalError, match="cannot read checkpoint"):
        societal.load(run.path)


def test_callback_stops_training(tmp_path):
    run = societal.train("societal/Chain-v0", out=tmp_path / "run", callback=lambda row: row["update"] < 3,
                         **{**FAST, "steps": 10**9})
    m = run.metrics
    assert m["update"].max() == 3 and m.eval_return_mean.notna().iloc[-1]


def test_a_wall_clock_budget_stops_training_and_still_evaluates(tmp_path):
    run = societal.train("societal/Chain-v0", out=tmp_path / "run", max_wall_s=0.5,
                         **{**FAST, "steps": 10**9, "eval_every": 10**6})
    m = run.metrics
    assert m["update"].max() >= 1 and m.wall_s.iloc[-2] < 0.5  # it ran until the budget was spent, no longer
    assert m.eval_return_mean.notna().iloc[-1] and (run.path / "plots" / "returns.png").is_file()


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "CliffWalking-v1", "Taxi-v4", "CartPole-v1"])
def test_any_discrete_action_gymnasium_env_trains(tmp_path, env_id):
    scale = {"CliffWalking-v1": 0.01, "Taxi-v4": 0.05}.get(env_id, 1.0)
    kwargs = {"max_episode_steps": 100} if env_id == "CliffWalking-v1" else {}  # it has no time limit
    run = societal.train(env_id, out=tmp_path / "run", reward_scale=scale, num_envs=16, env_kwargs=kwargs,
                         **{**FAST, "steps": 8192, "eval_episodes": 4})
    assert run.metrics.env_steps.iloc[-1] >= 8192
    if env_id == "CartPole-v1":
        assert run.bids.empty  # no per-state bids for Box observations
    else:
        assert run.bids.q_star.notna().all()


class Steps(gym.Env):
    """Discrete(3, start=-1): -1 steps back, 0 stays, +1 forward to the end of a 4-cell line, which pays 1; any
    other action is an error (the action an auction's winner names must be start + its index)."""

    observation_space, action_space = gym.spaces.Discrete(4), gym.spaces.Discrete(3, start=-1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cell = 0
        return 0, {}

    def step(self, action):
        if action not in (-1, 0, 1):
            raise ValueError(f"no action {action}")
        self.cell = max(0, self.cell + action)
        return self.cell, float(self.cell == 3), self.cell == 3, False, {}


def test_an_action_space_that_does_not_start_at_0_gets_its_own_actions(tmp_path):
    gym.register("test/Steps-v0", entry_point=Steps, max_episode_steps=30)
    run = societal.train("test/Steps-v0", out=tmp_path / "run", num_envs=16, policy_lr=4e-3, steps=60_000,
                         eval_every=5, eval_episodes=20, progress=False)
    assert run.metrics.eval_return_mean.dropna().iloc[-1] == 1.0  # +1 found: primitive 2 is action +1


def test_independent_and_solitary_societies_train(tmp_path):
    ind = societal.train("societal/Chain-v0", clone=False, out=tmp_path / "ind", **FAST)
    assert set(ind.bids.learner) == {0, 1, 2, 3} and ind.agent.num_learners == 4
    sol = societal.train("societal/Chain-v0", redundancy=1, out=tmp_path / "sol", **FAST)
    assert sol.agent.num_bidders == 2


# Learning: fixed seeds, small budgets. The policy learning rate is 10× the paper's so that these
# finish in seconds; the paper's settings are measured by `societal experiments` (see README).
LEARN = dict(policy_lr=4e-4, eval_every=25, eval_episodes=200, progress=False)


def final_bids(run):
    b = run.bids
    return b[(b["update"] == b["update"].max()) & (b.visits > 0)].set_index(["state", "primitive"])


@pytest.mark.slow
def test_bandit_bids_rank_the_arms_and_the_best_arm_wins(tmp_path):
    run = societal.train("societal/Bandit-v0", dropout=True, steps=300_000, out=tmp_path / "r", **LEARN)
    b = final_bids(run).loc[0]
    assert b.mean_bid.is_monotonic_increasing  # arm values 0.2 < 0.4 < 0.6 < 0.8
    assert b.mean_bid[3] == pytest.approx(0.8, abs=0.05)
    assert b.win_rate[3] >= 0.9


@pytest.mark.slow
def test_chain_right_outbids_left_and_bids_rise_toward_the_goal(tmp_path):
    run = societal.train("societal/Chain-v0", steps=400_000, out=tmp_path / "r", **LEARN)
    assert run.metrics.eval_return_mean.dropna().iloc[-1] == pytest.approx(0.8)
    b = final_bids(run)
    right, left = b.xs(1, level="primitive").mean_bid, b.xs(0, level="primitive").mean_bid
    assert (right > left).all() and right.is_monotonic_increasing
    assert right[4] == pytest.approx(0.8, abs=0.05)


@pytest.mark.slow
def test_duality_society_alternates(tmp_path):
    run = societal.train("societal/Duality-v0", steps=500_000, out=tmp_path / "r", **LEARN)
    assert run.metrics.eval_return_mean.dropna().iloc[-1] >= 4.5  # optimum 5.0
    b = final_bids(run).mean_bid
    assert b[0, 1] > b[0, 0] and b[1, 0] > b[1, 1]


def test_gae_bootstraps_truncations_but_not_terminations():
    from societal.learning.choices import gae

    reward = torch.tensor([[1.0], [0.0], [2.0]])
    discount = torch.tensor([[0.9], [0.81], [0.9]])  # the middle step lasted two env steps
    value = torch.tensor([[0.5], [0.4], [0.3]])
    next_value = torch.tensor([[0.4], [7.0], [0.6]])  # step 1 ends its episode at a state worth 7
    done = torch.tensor([[False], [True], [False]])
    terminal = torch.tensor([[False], [True], [False]])
    for terminated, boot in ((terminal, 0.0), (torch.zeros_like(terminal), 7.0)):
        a = gae(reward, discount, value, next_value, terminated, done, lam=0.5)[:, 0]
        d2 = 2.0 + 0.9 * 0.6 - 0.3  # the rollout's last step bootstraps with V of its next state
        d1 = 0.0 + 0.81 * boot - 0.4
        d0 = 1.0 + 0.9 * 0.4 - 0.5
        assert a.tolist() == pytest.approx([d0 + 0.9 * 0.5 * d1, d1, d2])


@pytest.mark.parametrize("env_id", ["societal/Chain-v0", "CartPole-v1"])
def test_the_monolithic_baseline_trains_saves_and_loads(tmp_path, env_id):
    run = societal.train(env_id, agent="monolithic", out=tmp_path / "run", **FAST)
    assert run.bids.empty and run.metrics.eval_return_mean.notna().any()
    loaded = societal.load(run.path, "last")
    torch.testing.assert_close(loaded.agent.theta, run.agent.theta)
    assert len(loaded.evaluate(episodes=5).returns) == 5


@pytest.mark.slow
def test_monolithic_ppo_solves_the_chain(tmp_path):
    run = societal.train("societal/Chain-v0", agent="monolithic", steps=200_000, out=tmp_path / "r",
                         **{**LEARN, "policy_lr": 1e-3})
    assert run.metrics.eval_return_mean.dropna().iloc[-1] == pytest.approx(0.8)


def test_options_run_side_by_side_until_done_or_the_episode_ends():
    from societal.environments.vector import make_vec
    from societal.primitives import Options

    env = make_vec("societal/Chain-v0", {}, 3, torch.device("cpu"))
    obs = env.reset()
    # option 0 walks right and never says done; option 1 says done (action 0 = Left) at once;
    # option 2 walks left and never says done, so only the 20-step time limit ends it
    script = lambda obs, option: torch.tensor([1, 0, 0])[option]  # noqa: E731
    options = Options(script, num_options=3, gamma=0.9, done_action=0)
    options.done_action = -1  # first: no done action at all
    tr = options.apply(env, obs, torch.tensor([0, 2, 0]))
    assert tr.duration.tolist() == [5, 20, 5]
    assert tr.reward.tolist() == pytest.approx([0.9**4 * 0.8, 0.0, 0.9**4 * 0.8])
    assert tr.env_return.tolist() == pytest.approx([0.8, 0.0, 0.8])
    assert tr.terminated.tolist() == [True, False, True] and tr.truncated.tolist() == [False, True, False]
    assert tr.final_obs.argmax(1).tolist() == [5, 0, 5] and tr.obs.argmax(1).tolist() == [0, 0, 0]
    options.done_action = 0
    tr = options.apply(env, tr.obs, torch.tensor([1, 0, 1]))
    assert tr.duration.tolist() == [1, 5, 1] and not tr.truncated.any()


def test_trainable_options_learn_from_their_own_inner_steps():
    from societal.environments.vector import make_vec
    from societal.monolithic import Monolithic
    from societal.primitives import Options

    env = make_vec("societal/Chain-v0", {}, 3, torch.device("cpu"))
    net = Monolithic((6,), 2, num_learners=3)
    with torch.no_grad():
        net.value_theta.zero_()  # V = 0: advantages are the discounted rewards to the end of each call
    script = lambda obs, option: torch.tensor([1, 0, 0])[option]  # noqa: E731
    options = Options(script, 3, gamma=0.9, done_action=-1, net=net, trainable=True)
    options.apply(env, env.reset(), torch.tensor([0, 2, 0]))  # 5 steps right (reward 0.8), 20 left, 5 right
    # the chooser values the states where the calls ended at 0.5, 0.3, 0.5: only the call cut by time
    # (option 2, not terminated) is bootstrapped with it
    s = option_samples(options, lam=1.0, continuation=torch.tensor([[0.5, 0.3, 0.5]]))
    assert s.valid.sum(1).tolist() == [10, 0, 20] and options.steps == [] and options.calls == 0
    mine = s.advantage[0][s.valid[0]]
    assert sorted(mine.tolist()) == pytest.approx(sorted([0.8 * 0.9**j for j in range(5)] * 2))
    assert s.advantage[2][s.valid[2]].tolist() == pytest.approx([0.3 * 0.9 ** (20 - j) for j in range(20)])
    assert torch.equal(s.target, s.advantage)
    assert s.action[0][s.valid[0]].eq(1).all() and s.action[2][s.valid[2]].eq(0).all()
    evaluation = options.frozen()  # same weights, steps not recorded
    evaluation.apply(env, env.reset(), torch.tensor([0, 2, 0]))
    assert evaluation.net is net and evaluation.steps == [] and options.steps == []


def test_load_and_eval_default_to_the_trained_policy_and_say_so(tmp_path, capsys):
    run = societal.train("societal/Bandit-v0", preset="general", out=tmp_path / "run", steps=40_000, eval_every=4,
                         eval_episodes=20, progress=False)
    evaluations = run.metrics.eval_return_mean.dropna()
    loaded = societal.load(run.path)
    assert loaded.checkpoint == "last" and loaded.update == run.metrics["update"].max() > 0
    assert evaluations.iloc[0] < 0.8 * 0.95 and loaded.assess().fraction_greedy > 0.999  # the best arm pays 0.8
    assert main(["eval", str(run.path), "--episodes", "5"]) == 0
    assert f"the last checkpoint (update {loaded.update}," in capsys.readouterr().out
