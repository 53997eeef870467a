"""TwoRoomsVecEnv against the MiniGrid TwoRooms env, step by step: same observations, rewards, flags."""

from collections import Counter

import numpy as np
import pytest
import torch

pytest.importorskip("minigrid")

from test_tworooms import DONE, FORWARD, IDS, LEFT, PICKUP, RIGHT, TOGGLE

import societal.environments  # noqa: F401  (registers the ids)
from societal.environments.tworooms import TwoRooms
from societal.environments.tworooms_vec import TwoRoomsVecEnv, state_index
from societal.environments.vector import GymVecEnv, make_vec

DROP = 4
CPU = torch.device("cpu")
CELLS = [(x, y) for x in (1, 2, 3, 5, 6, 7) for y in (1, 2, 3)]  # both rooms; the door cell only when open
REACHABLE = [(*c, d, o) for c in CELLS for d in range(4) for o in (0, 1)] + [(4, 2, d, 1) for d in range(4)]
VALID_STARTS = {  # from test_tworooms.py: the valid start poses of each room
    0: {((x, y), d) for x in (1, 2, 3) for y in (1, 2, 3) for d in range(4)} - {((3, 2), 0)},
    1: {((x, y), d) for x, y in [(5, 2), (6, 2), (7, 2), (5, 1), (6, 1), (5, 3), (6, 3)] for d in range(4)}
    - {((5, 2), 2), ((6, 1), 0), ((6, 3), 0), ((7, 2), 1), ((7, 2), 3)},
}


def f32(obs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(obs).float()


def pose(env: TwoRooms) -> tuple:
    return (*(int(v) for v in env.agent_pos), int(env.agent_dir), int(env.door.is_open))


def place(env: TwoRooms, p: tuple, step_count: int = 0) -> np.ndarray:
    """Put a MiniGrid env into pose ``(x, y, dir, door_open)`` at ``step_count``; its observation there."""
    env.agent_pos, env.agent_dir, env.door.is_open, env.step_count = p[:2], p[2], bool(p[3]), step_count
    return env.gen_obs()["image"]


def run_both(vec: TwoRoomsVecEnv, envs: list[TwoRooms], obs: torch.Tensor, steps: list) -> tuple[torch.Tensor, Counter]:
    """Step both with ``steps`` (``(action, mask)`` pairs); every output must agree. Counts what happened."""
    seen = Counter()
    for action, mask in steps:
        before = obs
        obs, reward, terminated, truncated, final = vec.step(action, mask)
        assert obs.dtype == final.dtype == reward.dtype == torch.float32 and obs.shape == before.shape
        poses = vec.poses().tolist()
        for i, env in enumerate(envs):
            if mask is not None and not mask[i]:  # left out: nothing moves
                assert (reward[i], terminated[i], truncated[i]) == (0, False, False)
                assert torch.equal(obs[i], before[i]) and torch.equal(final[i], before[i])
                seen["masked"] += 1
                continue
            o, r, te, tr, _ = env.step(int(action[i]))
            assert torch.equal(final[i], f32(o))
            assert (reward[i].item(), bool(terminated[i]), bool(truncated[i])) == (float(np.float32(r)), te, tr)
            if te or tr:  # reset in the same step: MiniGrid follows the vec env's new start pose
                seen["terminated"] += te
                seen["truncated"] += tr
                env.reset()
                assert poses[i][3] == 0 and (tuple(poses[i][:2]), poses[i][2]) in VALID_STARTS[env.start_room]
                o = place(env, poses[i])
            assert tuple(poses[i]) == pose(env)
            assert torch.equal(obs[i], f32(o))
    return obs, seen


def both(env_id: str, num_envs: int, seed: int = 0) -> tuple[TwoRoomsVecEnv, list[TwoRooms], torch.Tensor]:
    vec = make_vec(env_id, {}, num_envs, CPU)
    assert isinstance(vec, TwoRoomsVecEnv) and not vec.discrete
    obs = vec.reset(seed=seed)
    envs = [TwoRooms(*IDS[env_id]) for _ in range(num_envs)]
    for env, p, o in zip(envs, vec.poses().tolist(), obs, strict=True):
        env.reset(seed=seed)
        assert torch.equal(o, f32(place(env, p)))
    return vec, envs, obs


@pytest.mark.parametrize("env_id", IDS)
def test_random_sequences_match_minigrid(env_id: str) -> None:
    vec, envs, obs = both(env_id, 8)
    gen = torch.Generator().manual_seed(1)
    probs = torch.tensor([1.0, 1.0, 3.0, 0.3, 0.3, 1.5, 1.5])  # more moves, toggles and dones: more successes
    steps = []
    for k in range(90):
        mask = None if k % 3 else torch.rand(8, generator=gen) < 0.6
        steps.append((torch.multinomial(probs, 8, replacement=True, generator=gen), mask))
    _, seen = run_both(vec, envs, obs, steps)
    assert seen["truncated"] > 0 and seen["masked"] > 0


@pytest.mark.parametrize("env_id", IDS)
def test_every_state_and_action_matches_minigrid(env_id: str) -> None:
    """From every reachable state, at assorted step counts (49 → a truncation), every action (only the
    success of ``done`` depends on the task, so the other actions are checked on one task)."""
    vec, envs, _ = both(env_id, len(REACHABLE))
    seen = Counter()
    for a in range(7) if env_id == "societal/RedGoalTwoRooms-v0" else [DONE]:
        vec.state = torch.tensor([state_index(*p) for p in REACHABLE])
        vec.t = torch.arange(len(REACHABLE)) % 50
        obs = torch.stack([f32(place(env, p, int(t))) for env, p, t in zip(envs, REACHABLE, vec.t, strict=True)])
        assert torch.equal(obs, vec.obs_table[vec.state])
        seen += run_both(vec, envs, obs, [(torch.full((len(REACHABLE),), a), None)])[1]
    assert seen["terminated"] > 0 and seen["truncated"] > 0


@pytest.mark.parametrize(
    ("env_id", "start", "script"),
    [
        ("societal/RedGoalTwoRooms-v0", (3, 2, 0, 0), [TOGGLE, FORWARD, FORWARD, DONE]),
        ("societal/GreenTwoRooms-v0", (3, 2, 0, 0), [TOGGLE, FORWARD, FORWARD, FORWARD, FORWARD, RIGHT, FORWARD, DONE]),
        ("societal/BlueTwoRooms-v0", (3, 2, 0, 0), [TOGGLE, FORWARD, FORWARD, FORWARD, FORWARD, LEFT, FORWARD, DONE]),
        ("societal/GreenGoalTwoRooms-v0", (6, 3, 0, 0), [FORWARD, DONE]),
        ("societal/BlueGoalTwoRooms-v0", (6, 3, 0, 0), [FORWARD, LEFT, FORWARD, FORWARD, DONE]),
    ],
)
@pytest.mark.parametrize("last_step", [False, True])
def test_success_and_success_on_step_50(env_id: str, start: tuple, script: list, last_step: bool) -> None:
    vec, envs, _ = both(env_id, 1)
    vec.state = torch.tensor([state_index(*start)])
    obs = f32(place(envs[0], start))[None]
    script = [PICKUP] * (50 - len(script)) * last_step + script  # pickup does nothing here
    _, seen = run_both(vec, envs, obs, [(torch.tensor([a]), None) for a in script])
    assert seen == Counter(terminated=1, truncated=int(last_step))


def test_same_step_reset_and_mask() -> None:
    vec = make_vec("societal/GreenTwoRooms-v0", {}, 6, CPU)
    vec.reset(seed=0)
    vec.t = torch.tensor([49, 49, 49, 3, 3, 3])
    state, mask = vec.state.clone(), torch.tensor([True, True, False, True, False, True])
    obs, reward, terminated, truncated, final = vec.step(torch.full((6,), LEFT), mask)
    assert truncated.tolist() == [True, True, False, False, False, False] and not terminated.any()
    assert vec.t.tolist() == [0, 0, 49, 4, 3, 4] and not reward.any()
    assert torch.equal(final[:2], vec.obs_table[vec.next_state[state[:2] * 7 + LEFT]])  # where they ended
    assert torch.equal(obs[:2], vec.obs_table[vec.state[:2]]) and (vec.poses()[:2, 3] == 0).all()  # reset
    assert torch.equal(vec.state[[2, 4]], state[[2, 4]]) and torch.equal(obs[[2, 4]], final[[2, 4]])


@pytest.mark.parametrize(("env_id", "room"), [("societal/GreenTwoRooms-v0", 0), ("societal/BlueGoalTwoRooms-v0", 1)])
def test_start_pose_distribution(env_id: str, room: int) -> None:
    vec = make_vec(env_id, {}, 4000, CPU)
    vec.reset(seed=0)
    for _ in range(2):  # from reset, then from the same-step reset after a truncation
        poses = vec.poses()
        assert (poses[:, 3] == 0).all()
        counts = Counter(((x, y), d) for x, y, d, _ in poses.tolist())
        assert set(counts) == VALID_STARTS[room] and len(counts) == (35 if room == 0 else 23)
        assert min(counts.values()) > 0.6 * 4000 / len(counts)  # uniform
        vec.t.fill_(49)
        assert vec.step(torch.zeros(4000, dtype=torch.long))[3].all()


def test_seeding() -> None:
    a, b = (make_vec("societal/RedGoalTwoRooms-v0", {}, 64, CPU) for _ in range(2))
    assert torch.equal(a.reset(seed=5), b.reset(seed=5))
    assert len({tuple(p) for p in a.poses().tolist()}) > 10  # copies differ
    for _ in range(60):  # later resets draw from the same stream too
        action = torch.randint(7, (64,))
        assert all(torch.equal(x, y) for x, y in zip(a.step(action), b.step(action), strict=True))
    assert not torch.equal(a.reset(seed=5), a.reset(seed=6))


def test_make_vec_dispatch() -> None:
    vec = make_vec("societal/BlueTwoRooms-v0", {}, 3, CPU)
    assert isinstance(vec, TwoRoomsVecEnv) and vec.reset(seed=0).shape == (3, 7, 7, 3)
    rendering = make_vec("societal/BlueTwoRooms-v0", {"render_mode": "rgb_array"}, 1, CPU)
    assert isinstance(rendering, GymVecEnv)
    rendering.reset(seed=0)
    assert rendering.envs[0].render().shape == (160, 288, 3)
