"""The follow-up's transfer tasks: transitions and Q* against hand-worked values, the factorized baseline's
place in a run, and the pretrain → transfer protocol end to end at a tiny budget."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import societal.cli
from societal.environments import finite_mdp, value_iteration
from societal.environments.tabular import TabularVecEnv
from societal.environments.transfer import GRAPHS
from societal.experiments import followup, modularity

G = 0.99


def two_hot(state: int, key: int, states: int = 4, keys: int = 6) -> list[float]:
    x = [0.0] * (states + keys)
    x[state] = 1.0
    if key >= 0:
        x[states + key] = 1.0
    return x


def play(task: str, letters: str, graph: int | None = None) -> list[tuple]:
    """(observation after, reward, terminated) of each step; ``graph``: start in that graph of a mixture."""
    env = gym.make(f"societal/{task}-v0").unwrapped
    obs, _ = env.reset(seed=0)
    if graph is not None:
        env.state = env.nodes.index((graph, GRAPHS[task][0][graph].start))
        obs = env.observe(env.state)
    out = [(obs.tolist(),)]
    for letter in letters:
        obs, r, term, _, _ = env.step(env.action_names.index(letter))
        out.append((obs.tolist(), pytest.approx(r), term))
    return out


@pytest.mark.parametrize("task", [*GRAPHS, "BanditTransfer"])
def test_passes_gymnasium_env_checker(task):
    check_env(gym.make(f"societal/{task}-v0").unwrapped, skip_render_check=True)


def test_linear_chain_and_its_three_changes():
    assert play("LinABC", "ABC") == [(two_hot(0, 0),), (two_hot(1, 2), 0, False), (two_hot(2, -1), 0, False),
                                     (two_hot(3, 4), 0.8, True)]
    # D detours to (3, 5): back to (2, -1) with A, B, E, F; C there ends the episode with nothing
    assert play("LinABC", "ABDC")[-2:] == [(two_hot(3, 5), 0, False), (two_hot(3, 4), 0, True)]
    assert play("LinABC", "ABDAC")[-2:] == [(two_hot(2, -1), 0, False), (two_hot(3, 4), 0.8, True)]
    assert play("LinABC", "BCDEF")[-1] == (two_hot(0, 0), 0, False)  # only A moves at the start
    assert play("LinABD", "ABD")[-1] == (two_hot(3, 5), 0.8, True)
    assert play("LinABD", "ABC")[-1] == (two_hot(3, 4), 0, False)
    assert play("LinAEC", "AEC")[1:] == [(two_hot(1, 3), 0, False), (two_hot(2, -1), 0, False),
                                         (two_hot(3, 4), 0.8, True)]
    assert play("LinAEC", "AB")[-1] == (two_hot(1, 3), 0, False)
    assert play("LinFBC", "FBC")[0] == (two_hot(0, 1),) and play("LinFBC", "FBC")[-1][1:] == (0.8, True)


OPTIMAL = {  # task → the letters that collect the reward from each graph's start
    "LinABC": ["ABC"], "LinABD": ["ABD"], "LinAEC": ["AEC"], "LinFBC": ["FBC"],
    "ComAncABAC": ["AC", "AD"], "ComAncDBDC": ["BC", "BD"], "ComAncABAE": ["AC", "AE"], "ComAncAEAF": ["AE", "AF"],
    "ComDescACBC": ["AC", "BC"], "ComDescAFBF": ["AF", "BF"], "ComDescDCEC": ["DC", "EC"], "ComDescACDC": ["AC", "DC"],
    "InvarV1": ["AC"], "InvarV2": ["BD"],
}


@pytest.mark.parametrize("task", GRAPHS)
def test_every_task_pays_once_at_the_end_of_its_optimal_path(task):
    assert set(OPTIMAL) == set(GRAPHS)
    for graph, letters in enumerate(OPTIMAL[task]):
        steps = play(task, letters, graph)[1:]
        assert [s[1:] for s in steps] == [(0, False)] * (len(letters) - 1) + [(0.8, True)]
        wrong = "ABCDEF"[: len(GRAPHS[task][3])].replace(letters[-1], "")
        for other in wrong:  # any other last letter neither pays nor ends the episode with a reward
            assert play(task, letters[:-1] + other, graph)[-1][1] == 0


def test_mixtures_draw_a_graph_per_episode_and_hide_which():
    ab, ac = play("ComAncABAC", "AC", graph=0), play("ComAncABAC", "AD", graph=1)
    assert ab[0] == ac[0] and ab[1][0] == two_hot(1, 2) and ac[1][0] == two_hot(1, 3)
    assert ab[-1][1:] == (0.8, True) and ac[-1][1:] == (0.8, True)
    assert play("ComAncABAC", "AD", graph=0)[-1][1:] == (0, False)
    env = gym.make("societal/ComAncABAC-v0").unwrapped
    graphs = set()
    for seed in range(40):
        env.reset(seed=seed)
        graphs.add(env.nodes[env.state][0])
    assert graphs == {0, 1}
    assert play("ComDescDCEC", "DC", graph=0)[-1][1:] == (0.8, True)
    assert play("ComDescAFBF", "BF", graph=1)[-1][1:] == (0.8, True)
    assert play("ComDescAFBF", "BC", graph=1)[-1][1:] == (0, False)
    assert play("InvarV2", "BD") == [(two_hot(1, -1, 5, 2),), (two_hot(2, 1, 5, 2), 0, False),
                                     (two_hot(4, -1, 5, 2), 0.8, True)]


def test_q_star_by_hand():
    env = gym.make("societal/LinABC-v0").unwrapped
    q = value_iteration(finite_mdp(env), G)
    start, middle, last, detour = (env.nodes.index((0, node)) for node in ((0, 0), (1, 2), (2, -1), (3, 5)))
    v = 0.8 * G**2
    assert q[start].tolist() == pytest.approx([v, G * v, G * v, G * v, G * v, G * v])
    assert q[middle, 1] == pytest.approx(0.8 * G) and q[last, 2] == pytest.approx(0.8)
    assert q[last, 3] == pytest.approx(G * G * 0.8)  # D, then back with A, then C
    assert q[detour, 2] == pytest.approx(0.0) and q[detour, 0] == pytest.approx(G * 0.8)
    q = value_iteration(finite_mdp(gym.make("societal/BanditTransfer-v0")), G)
    assert q[0].tolist() == pytest.approx([0.8, 0.4, 0.6, 0.2])


@pytest.mark.parametrize("task", GRAPHS)
def test_the_start_is_worth_the_reward_discounted_over_the_shortest_path(task):
    """Three decisions in the linear chains, two in every other family (by hand: 0.8 γ² and 0.8 γ)."""
    env = gym.make(f"societal/{task}-v0").unwrapped
    q = value_iteration(finite_mdp(env), G)
    steps = 3 if task.startswith("Lin") else 2
    v = 0.8 * G ** (steps - 1)
    for s in np.flatnonzero(env.start):  # one action moves on, every other one stays
        assert np.sort(q[s]).tolist() == pytest.approx([G * v] * (q.shape[1] - 1) + [v])


def test_vectorised_twin_sees_the_two_hot_codes():
    env = gym.make("societal/ComAncABAC-v0").unwrapped
    vec = TabularVecEnv(env, 64, torch.device("cpu"))
    obs = vec.reset(seed=0)
    torch.testing.assert_close(obs, torch.as_tensor(env.features)[vec.state])
    rng = np.random.default_rng(0)
    for _ in range(30):
        before, actions = vec.state.clone(), rng.integers(0, 6, 64)
        obs, reward, term, _, final = vec.step(torch.as_tensor(actions))
        for i in range(64):
            env.state, env.t = int(before[i]), 0
            o, r, te, _, _ = env.step(actions[i])
            assert (final[i].tolist(), reward[i].item(), term[i].item()) == (o.tolist(), pytest.approx(r), te)


@pytest.mark.parametrize("before,after,letters", [("LinABC", "LinABD", "CD"), ("LinABC", "LinAEC", "BE"),
                                                  ("LinABC", "LinFBC", "AF"), ("Bandit", "BanditTransfer", "AD"),
                                                  ("ComAncABAC", "ComAncABAE", "DE"),
                                                  ("ComDescACBC", "ComDescAFBF", "CF")])
def test_the_primitives_a_change_concerns(before, after, letters):
    assert modularity.concerned(before, after) == ["ABCDEF".index(x) for x in letters]


def test_pretrain_then_transfer_end_to_end(tmp_path):
    runs = followup.commands(range(1), tmp_path, scale=0.004, only=["linear"])
    wanted = [(f, argv) for f, argv in runs if f.parent.name.endswith(("pretrain", "transfer-LinABD"))]
    assert len(wanted) == 6  # three agents, two stages
    for folder, argv in wanted:
        assert societal.cli.main([*argv, "--quiet"]) == 0, folder
    table = modularity.summarize(tmp_path, ["linear"])
    transfers = table[(table.stage == "transfer-LinABD") & (table.seed == "seed0")].set_index("agent")
    assert set(transfers.index) == {"society", "monolithic", "factorized"}
    assert (transfers.concerned == "p2 p3").all()
    assert transfers.cross_dependence["society"] == 0 and (transfers.cross_dependence.drop("society") > 0).all()
    parts = transfers.dw_per_part.str.split()
    assert len(parts["society"]) == 6 and len(parts["factorized"]) == 6 and parts["monolithic"][-1].startswith("shared")
    assert (tmp_path / "modularity" / "linear" / "transfer.png").is_file()
    assert (tmp_path / "modularity" / "linear" / "weights.png").is_file()
