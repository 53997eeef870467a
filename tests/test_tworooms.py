"""The TwoRooms family: layout, start poses, success and reward rules, truncation."""

from collections import Counter

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("minigrid")

from gymnasium.utils.env_checker import check_env
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

import societal.environments  # noqa: F401  (registers the ids)
from societal.environments.tworooms import TwoRooms

IDS = {  # id -> (start room, goal)
    "societal/RedGoalTwoRooms-v0": (0, "red"),
    "societal/GreenGoalTwoRooms-v0": (1, "green"),
    "societal/BlueGoalTwoRooms-v0": (1, "blue"),
    "societal/GreenTwoRooms-v0": (0, "green"),
    "societal/BlueTwoRooms-v0": (0, "blue"),
}
LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = range(7)
ROOM_CELLS = {
    0: [(x, y) for x in (1, 2, 3) for y in (1, 2, 3)],
    1: [(x, 2) for x in (5, 6, 7)] + [(5, 1), (6, 1), (5, 3), (6, 3)],
}
INVALID = {0: {((3, 2), 0)}, 1: {((5, 2), 2), ((6, 1), 0), ((6, 3), 0), ((7, 2), 1), ((7, 2), 3)}}  # front is door/tile


def make(env_id: str, pose: tuple | None = None) -> TwoRooms:
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    if pose is not None:
        env.agent_pos, env.agent_dir = pose
    return env


def run(env: TwoRooms, actions: list[int]) -> list[tuple]:
    return [env.step(a)[1:] for a in actions]


@pytest.mark.parametrize("env_id", IDS)
def test_registered_and_check_env(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array")
    assert (env.unwrapped.start_room, env.unwrapped.goal) == IDS[env_id]
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert obs.shape == (7, 7, 3) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    assert env.action_space.n == 7 and info == {"room": IDS[env_id][0], "success": False}
    assert env.render().shape == (160, 288, 3)


@pytest.mark.parametrize("env_id", IDS)
def test_layout(env_id: str) -> None:
    env = make(env_id)
    grid = env.grid
    assert (grid.width, grid.height, env.max_steps) == (9, 5, 50)
    for x in range(9):
        for y in range(5):
            cell = grid.get(x, y)
            if x in (0, 4, 8) or y in (0, 4):
                expected = "door" if (x, y) == (4, 2) else "wall"
                assert cell is not None and cell.type == expected, (x, y)
            elif (x, y) not in ((7, 1), (7, 3)):
                assert cell is None, (x, y)
    door = grid.get(4, 2)
    assert door.color == "red" and not door.is_open and not door.is_locked
    for color, pos in (("green", (7, 3)), ("blue", (7, 1))):
        tile = grid.get(*pos)
        assert tile.color == color and tile.can_overlap() and not tile.can_pickup()
        assert tile.encode() == (OBJECT_TO_IDX["box"], COLOR_TO_IDX[color], 0)  # the fork's GoalColor encoding


def test_observation_shows_closed_red_door() -> None:
    env = make("societal/RedGoalTwoRooms-v0", pose=((3, 2), 0))
    obs = env.step(LEFT)[0]
    obs = env.step(RIGHT)[0]
    assert tuple(obs[3, 5]) == (OBJECT_TO_IDX["door"], COLOR_TO_IDX["red"], 1)
    obs = env.step(TOGGLE)[0]
    assert tuple(obs[3, 5]) == (OBJECT_TO_IDX["door"], COLOR_TO_IDX["red"], 0)


@pytest.mark.parametrize(("env_id", "room"), [("societal/GreenTwoRooms-v0", 0), ("societal/BlueGoalTwoRooms-v0", 1)])
def test_start_pose_distribution(env_id: str, room: int) -> None:
    env = gym.make(env_id).unwrapped
    counts = Counter()
    for seed in range(1500):
        _, info = env.reset(seed=seed)
        counts[(tuple(int(v) for v in env.agent_pos), int(env.agent_dir))] += 1
        assert info["room"] == room
    valid = {(c, d) for c in ROOM_CELLS[room] for d in range(4)} - INVALID[room]
    assert len(valid) == (35 if room == 0 else 23)
    assert set(counts) == valid
    assert min(counts.values()) > 0.5 * 1500 / len(valid)  # roughly uniform


def test_reset_is_deterministic() -> None:
    a, b = TwoRooms(0, "green"), TwoRooms(0, "green")
    for seed in (0, 1, 7):
        oa, _ = a.reset(seed=seed)
        ob, _ = b.reset(seed=seed)
        assert np.array_equal(oa, ob) and tuple(a.agent_pos) == tuple(b.agent_pos) and a.agent_dir == b.agent_dir
    poses = set()
    for seed in range(20):
        a.reset(seed=seed)
        poses.add((tuple(a.agent_pos), a.agent_dir))
    assert len(poses) > 1


def test_red_goal_success_only_inside_right_room_with_open_door() -> None:
    env = make("societal/RedGoalTwoRooms-v0", pose=((3, 2), 0))
    assert run(env, [DONE]) == [(0.0, False, False, {"room": 0, "success": False})]
    assert run(env, [TOGGLE, FORWARD, DONE]) == [
        (0.0, False, False, {"room": 0, "success": False}),
        (0.0, False, False, {"room": 1, "success": False}),
        (0.0, False, False, {"room": 1, "success": False}),
    ]  # door cell
    assert run(env, [FORWARD]) == [(0.0, False, False, {"room": 1, "success": False})]
    assert run(env, [DONE]) == [(pytest.approx(1 - 0.9 * 6 / 50), True, False, {"room": 1, "success": True})]


def test_red_goal_fails_when_door_closed_again() -> None:
    env = make("societal/RedGoalTwoRooms-v0", pose=((3, 2), 0))
    run(env, [TOGGLE, FORWARD, FORWARD, LEFT, LEFT])
    assert tuple(env.agent_pos) == (5, 2) and env.door.is_open
    assert run(env, [TOGGLE, DONE])[-1][:3] == (0.0, False, False)
    assert run(env, [TOGGLE, DONE])[-1][:3] == (pytest.approx(1 - 0.9 * 9 / 50), True, False)


@pytest.mark.parametrize(
    ("env_id", "turn", "other"), [("societal/GreenTwoRooms-v0", RIGHT, LEFT), ("societal/BlueTwoRooms-v0", LEFT, RIGHT)]
)
def test_goal_tile_success(env_id: str, turn: int, other: int) -> None:
    env = make(env_id, pose=((3, 2), 0))
    steps = run(env, [TOGGLE, FORWARD, FORWARD, FORWARD, FORWARD, turn, FORWARD])
    assert all(s[:3] == (0.0, False, False) for s in steps)  # stepping on the tile does not end the episode
    assert run(env, [PICKUP, TOGGLE, DROP])[-1][:3] == (0.0, False, False)  # the tile can't be picked or toggled
    assert env.grid.get(*env.agent_pos) is not None
    assert run(env, [DONE]) == [(pytest.approx(1 - 0.9 * 11 / 50), True, False, {"room": 1, "success": True})]
    wrong = make(env_id, pose=((3, 2), 0))  # the other colour's tile does not count
    steps = run(wrong, [TOGGLE, FORWARD, FORWARD, FORWARD, FORWARD, other, FORWARD, DONE])
    assert all(s[:3] == (0.0, False, False) for s in steps)


def test_goal_tasks_from_right_room() -> None:
    env = make("societal/GreenGoalTwoRooms-v0", pose=((6, 3), 0))
    assert not env.door.is_open  # the door is closed in every task
    assert run(env, [FORWARD, DONE])[-1] == (pytest.approx(1 - 0.9 * 2 / 50), True, False, {"room": 1, "success": True})
    env = make("societal/BlueGoalTwoRooms-v0", pose=((6, 3), 0))
    assert run(env, [FORWARD, DONE])[-1][:3] == (0.0, False, False)
    assert run(env, [LEFT, FORWARD, FORWARD, DONE])[-1][1] is True


@pytest.mark.parametrize("env_id", IDS)
def test_truncation_at_50_steps(env_id: str) -> None:
    env = make(env_id, pose=((1, 1) if IDS[env_id][0] == 0 else (5, 1), 0))
    steps = run(env, [LEFT, DONE] * 24 + [LEFT])
    assert all(s[:3] == (0.0, False, False) for s in steps)
    assert run(env, [DONE])[0][:3] == (0.0, False, True)
