"""The Seaquest and SpaceInvaders twins against MinAtar itself, step for step: same draws, same observations,
rewards and ends, for one copy replaying MinAtar's stream and for a batch stepped under random masks."""

from __future__ import annotations

import copy
from collections import Counter

import gymnasium as gym
import minatar.gym
import numpy as np
import pytest
import torch
from torch import Tensor

from societal.environments.minatar.base import MinAtarTwin
from societal.environments.minatar.draws import NumpyDraws
from societal.environments.minatar.seaquest import SeaquestTwin
from societal.environments.minatar.space_invaders import SpaceInvadersTwin

CPU = torch.device("cpu")
TWINS: dict[str, type[MinAtarTwin]] = {"Seaquest": SeaquestTwin, "SpaceInvaders": SpaceInvadersTwin}
NAMES = "nlurdf"  # MinAtar's action letters, by full action index
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the v0 ids are out of date


def make_env(game: str, version: str, **kwargs) -> gym.Env:
    if f"MinAtar/{game}-v1" not in gym.registry:
        minatar.gym.register_envs()
    return gym.make(f"MinAtar/{game}-{version}", **kwargs)


class PerCopyDraws:
    """Copy ``i`` draws from its own MinAtar stream ``streams[i]``, only when it is in the mask (``NumpyDraws``
    for each copy): a batch of twins then follows a batch of MinAtar games, each stepped when masked in."""

    def __init__(self, streams: list[np.random.RandomState]) -> None:
        self.copies = [NumpyDraws(stream) for stream in streams]

    def rand(self, mask: Tensor, n: int = 1) -> Tensor:
        return torch.cat([draws.rand(mask[i : i + 1], n) for i, draws in enumerate(self.copies)])

    def randint(self, mask: Tensor, low: int, high: int | Tensor, n: int = 1) -> Tensor:
        highs = torch.as_tensor(high).expand(len(self.copies))
        return torch.cat([d.randint(mask[i : i + 1], low, highs[i], n) for i, d in enumerate(self.copies)])


# Episode starts. Some episodes start further into the game, the same state set in MinAtar's game and in the
# twin, so that late events (crowded rows, six divers, cleared waves, a wave at the bottom) come up within a
# few thousand steps. Seaquest's ramp levels are ones MinAtar reaches (the twin's capacities rely on them).


def seaquest_start(game, twin: MinAtarTwin, i: int, rng: np.random.Generator) -> None:
    if rng.random() < 0.5:
        return
    ramp = int(rng.integers(0, 26))  # ``_surface`` ramps the spawn speed to 1 and the move interval to 2
    values = {"ramp_index": ramp, "e_spawn_speed": max(1, 20 - ramp), "move_speed": 5 - min(ramp, 6) // 2,
              "diver_count": int(rng.integers(0, 6))}
    values["e_spawn_timer"] = values["e_spawn_speed"]
    for name, value in values.items():
        setattr(game, name, value)
        getattr(twin, name)[i] = value


def space_invaders_start(game, twin: MinAtarTwin, i: int, rng: np.random.Generator) -> None:
    kind = rng.random()
    if kind < 0.3:
        return
    game.alien_map[:] = 0
    if kind < 0.85:  # a thinned, lower wave: cleared (and ramped: interval 12 down to 6), or landed, sooner
        kept = rng.random(24) < rng.uniform(0.02, 0.3)
        kept[rng.integers(24)] = True  # MinAtar's aliens never run out within a step
        drop, ramp = int(rng.integers(2, 7)), int(rng.integers(0, 7))
        game.alien_map[drop : drop + 4, 2:8] = kept.reshape(4, 6)
        game.ramp_index, game.enemy_move_interval = ramp, 12 - ramp
    else:  # the last alien, on the bottom row, about to reach the left edge and turn
        game.alien_map[9, rng.integers(0, 3)], game.alien_move_timer = 1, int(rng.integers(0, 2))
    twin.aliens[i] = torch.as_tensor(game.alien_map, dtype=torch.bool)
    for name in ("ramp_index", "enemy_move_interval", "alien_move_timer"):
        getattr(twin, name)[i] = getattr(game, name)


STARTS = {"Seaquest": seaquest_start, "SpaceInvaders": space_invaders_start}


# Policies: random, weighted toward firing and moving; Seaquest's also chases divers and surfaces with them.


def seaquest_policy(obs: np.ndarray, rng: np.random.Generator) -> str:
    (y, x), divers = np.argwhere(obs[..., 0])[0], np.argwhere(obs[..., 9])
    holding, oxygen = obs[9, :, 8].sum(), obs[9, :, 7].sum()
    surfacing = holding == 6 or (holding and oxygen <= 3)
    if surfacing and rng.random() < 0.7:
        return "u"
    if len(divers) and rng.random() < 0.4:
        dy, dx = divers[np.abs(divers - (y, x)).sum(1).argmin()] - (y, x)
        action = ("d" if dy > 0 else "u") if dy else ("r" if dx > 0 else "l" if dx < 0 else "f")
    else:
        action = rng.choice(list(NAMES), p=[0.05, 0.15, 0.1, 0.15, 0.15, 0.4])
    return "f" if action == "u" and y == 1 else action  # surfacing before it means to costs a diver or the game


def space_invaders_policy(obs: np.ndarray, rng: np.random.Generator) -> str:
    x = obs[9, :, 0].argmax()
    danger = obs[8, :, 5] | obs[8, :, 1]  # what can reach the bottom row in this step
    if danger[x]:
        safe = [a for a, nx in (("l", max(x - 1, 0)), ("r", min(x + 1, 9))) if not danger[nx]]
        return rng.choice(safe) if safe else "f"
    columns = np.flatnonzero(obs[:, :, 1].any(0))
    if len(columns) and rng.random() < 0.7:  # aim at the nearest column of aliens
        target = columns[np.abs(columns - x).argmin()]
        return "f" if target == x else ("r" if target > x else "l")
    return rng.choice(list(NAMES), p=[0.1, 0.25, 0.05, 0.25, 0.05, 0.3])


POLICIES = {"Seaquest": seaquest_policy, "SpaceInvaders": space_invaders_policy}


def index_of(env: gym.Env, letter: str) -> int:
    """The env's action index for a MinAtar action letter (a letter outside v1's set does nothing: 'n')."""
    action_set = env.unwrapped.action_set
    full = NAMES.index(letter)
    return action_set.index(full) if full in action_set else 0


def count_events(seen: Counter, game, before: dict, reward: float, terminated: bool) -> None:
    seen["steps"] += 1
    seen["episodes"] += terminated
    seen["rewards"] += reward > 0
    if hasattr(game, "divers"):  # Seaquest
        seen["divers collected"] += max(0, game.diver_count - before["diver_count"])
        surfaced = not terminated and before["sub_y"] > 0 and game.sub_y == 0
        seen["surfaced"] += surfaced
        seen["six divers surfaced"] += surfaced and before["diver_count"] == 6
        cells = [tuple(e[:2]) for e in game.e_fish + game.e_subs]
        seen["enemies sharing a cell"] += len(cells) - len(set(cells))
    else:
        seen["waves cleared"] += bool(game.alien_map[0:4, 2:8].all()) and before["aliens"] < 24
        seen["wave turned at the bottom"] += before["bottom"] and game.alien_dir != before["dir"]


def snapshot(game) -> dict:
    if hasattr(game, "divers"):
        return {"diver_count": game.diver_count, "sub_y": game.sub_y}
    return {"aliens": int(game.alien_map.sum()), "bottom": bool(game.alien_map[9].any()), "dir": game.alien_dir}


def replay(game_name: str, version: str, copies: int, steps: int, seed: int, masked: bool = False,
           **kwargs) -> Counter:
    """``copies`` twins against as many MinAtar games (made with ``kwargs``), each copy replaying its game's
    stream (with random masks if ``masked``): every output of a copy masked in must agree exactly with its
    game's, a copy masked out stands still. Counts what happened."""
    rng, seen = np.random.default_rng(seed), Counter()
    envs = [make_env(game_name, version, **kwargs) for _ in range(copies)]
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    games = [env.unwrapped.game.env for env in envs]
    twin = TWINS[game_name](envs[0].unwrapped, copies, CPU)
    streams = [np.random.RandomState(seed + i) for i in range(copies)]
    twin.draws = NumpyDraws(streams[0]) if copies == 1 else PerCopyDraws(streams)
    start, policy = STARTS[game_name], POLICIES[game_name]
    for i, game in enumerate(games):
        start(game, twin, i, rng)
        obs[i] = game.state()
    assert all(np.array_equal(o, state) for o, state in zip(twin._observe().numpy(), obs))
    for _ in range(steps):
        mask = rng.random(copies) < 0.7 if masked else np.ones(copies, dtype=bool)
        actions = [index_of(envs[0], policy(o, rng)) for o in obs]
        t_obs, t_reward, t_terminated, t_truncated, t_final = (
            x.numpy() for x in twin.step(torch.tensor(actions), torch.as_tensor(mask)))
        for i, (env, game) in enumerate(zip(envs, games)):
            if not mask[i]:
                assert (t_reward[i], t_terminated[i], t_truncated[i]) == (0.0, False, False)
                assert np.array_equal(t_final[i], obs[i]) and np.array_equal(t_obs[i], obs[i])
                continue
            before = snapshot(game)
            obs[i], reward, terminated, truncated, _ = env.step(actions[i])
            assert np.array_equal(t_final[i], obs[i])
            assert (t_reward[i], t_terminated[i], t_truncated[i]) == (reward, terminated, truncated)
            count_events(seen, game, before, reward, terminated)
            if terminated:  # the twin has started its next episode: MinAtar's reset starts the same one
                obs[i] = env.reset()[0]
                assert np.array_equal(t_obs[i], obs[i])
                start(game, twin, i, rng)
                obs[i] = game.state()
                assert np.array_equal(twin._observe()[i].numpy(), obs[i])
    return seen


@pytest.mark.parametrize("game_name", TWINS)
def test_one_copy_replays_minatar_on_its_stream(game_name: str):
    seen = replay(game_name, "v1", copies=1, steps=1000, seed=1)
    assert seen["episodes"] >= 5 and seen["rewards"] >= 5, seen


@pytest.mark.parametrize("version", ["v0", "v1"])
def test_seaquest_replays_minatar_step_for_step(version: str):
    seen = replay("Seaquest", version, copies=8, steps=400, seed=10 if version == "v0" else 20)
    assert seen["steps"] >= 3000 and seen["episodes"] >= 20 and seen["rewards"] >= 10, seen
    assert seen["divers collected"] >= 20 and seen["surfaced"] >= 5 and seen["six divers surfaced"] >= 1, seen
    assert seen["enemies sharing a cell"] >= 1, seen


@pytest.mark.parametrize("version", ["v0", "v1"])
def test_space_invaders_replays_minatar_step_for_step(version: str):
    seen = replay("SpaceInvaders", version, copies=8, steps=400, seed=30 if version == "v0" else 40)
    assert seen["steps"] >= 3000 and seen["episodes"] >= 20 and seen["rewards"] >= 50, seen
    assert seen["waves cleared"] >= 3 and seen["wave turned at the bottom"] >= 1, seen


@pytest.mark.parametrize("game_name", TWINS)
def test_masked_copies_replay_minatar_or_stand_still(game_name: str):
    options = {"difficulty_ramping": False, "sticky_action_prob": 0.25}  # MinAtar's other settings too
    seen = replay(game_name, "v0", copies=64, steps=60, seed=50, masked=True, **options)
    assert seen["episodes"] >= 5 and seen["rewards"] >= 10, seen


def run(twin: MinAtarTwin, actions: Tensor, masks: Tensor) -> list[Tensor]:
    return [x for a, m in zip(actions, masks) for x in twin.step(a, m)]


@pytest.mark.parametrize("game_name", TWINS)
def test_torch_draws_masks_save_and_restore(game_name: str):
    """Random torch draws: masked-out copies keep their whole state; a saved state goes on identically, in
    the same twin or a new one; ``reset(seed)`` starts the same way every time."""
    env, n, g = make_env(game_name, "v0"), 64, torch.Generator().manual_seed(0)
    twins = [TWINS[game_name](env.unwrapped, n, CPU) for _ in range(4)]
    for twin in twins:
        twin.max_episode_steps = 120  # truncation too
    twin = twins[0]
    actions, masks = torch.randint(0, 6, (160, n), generator=g), torch.rand(160, n, generator=g) < 0.7
    ended = 0
    for a, m in zip(actions[:100], masks[:100]):
        state = twin.state_dict()
        _, reward, terminated, truncated, _ = twin.step(a, m)
        ended += int((terminated | truncated).sum())
        assert not (reward[~m].any() or terminated[~m].any() or truncated[~m].any())
        for name in twin.STATE:
            assert torch.equal(getattr(twin, name)[~m], state[name][~m]), name
    assert ended >= 20
    saved = twin.state_dict()
    first = run(twin, actions[100:], masks[100:])
    for other in twins[:2]:
        other.load_state_dict(copy.deepcopy(saved))  # a copy: the base class counts steps in place
        assert all(torch.equal(x, y) for x, y in zip(first, run(other, actions[100:], masks[100:])))

    # fresh twins: ``reset`` keeps the last action for sticky actions, as MinAtar's does
    assert torch.equal(twins[2].reset(seed=7), twins[3].reset(seed=7))
    assert all(torch.equal(x, y) for x, y in zip(*(run(t, actions[:60], masks[:60]) for t in twins[2:])))
