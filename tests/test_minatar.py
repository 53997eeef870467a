"""MinAtar's Breakout, Freeway and Asterix batched in torch, against the ``minatar`` package step for step."""

import subprocess
import sys
from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from societal.environments.minatar import TWINS, MinAtarVecEnv
from societal.environments.minatar.asterix import AsterixTwin
from societal.environments.minatar.breakout import BreakoutTwin
from societal.environments.minatar.draws import NumpyDraws
from societal.environments.minatar.freeway import FreewayTwin
from societal.environments.vector import make_vec

CPU = torch.device("cpu")
TWIN_OF = {"Breakout": BreakoutTwin, "Freeway": FreewayTwin, "Asterix": AsterixTwin}


class CopiesDraws:
    """Each copy's draws from its own ``RandomState``, made only for the copies in the mask: copy i of a batch then
    consumes the stream of MinAtar env i seeded alike, whichever copies step."""

    def __init__(self, seeds: list[int]) -> None:
        self.copies = [NumpyDraws(np.random.RandomState(s)) for s in seeds]

    def rand(self, mask: torch.Tensor, n: int = 1) -> torch.Tensor:
        return torch.cat([d.rand(m[None], n) for d, m in zip(self.copies, mask)])

    def randint(self, mask: torch.Tensor, low: int, high, n: int = 1) -> torch.Tensor:
        high = torch.as_tensor(high).expand(len(self.copies))
        return torch.cat([d.randint(m[None], low, h, n) for d, m, h in zip(self.copies, mask, high)])


def actions(game: str, n: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """Random actions; Freeway's chicken goes up more often than not, or it would never get across."""
    if game != "Freeway":
        return rng.integers(0, n, size)
    up = {6: 2, 3: 1}[n]  # 'u' in the full and in the minimal action set
    return np.where(rng.random(size) < 0.6, up, rng.integers(0, n, size))


def harden(game: str, env: gym.Env, vec, i: int, rng: np.random.Generator) -> None:
    """Put copy ``i`` of both in the same state, one that random play seldom reaches: Breakout with few bricks left
    (the wall is rebuilt), Freeway near its time limit, Asterix late in its difficulty ramp (slots fill up)."""
    g = env.unwrapped.game.env
    if game == "Breakout":
        g.brick_map = np.zeros((10, 10))
        g.brick_map[1:4] = rng.random((3, 10)) < 0.1
        vec.bricks[i] = torch.as_tensor(g.brick_map == 1)
    elif game == "Freeway":
        g.terminate_timer = int(rng.integers(0, 300))
        vec.terminate_timer[i] = g.terminate_timer
    else:
        g.spawn_speed, g.move_speed = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        g.spawn_timer, g.move_timer = g.spawn_speed, g.move_speed
        g.ramp_index, g.ramp_timer = int(rng.integers(0, 10)), int(rng.integers(-1, 100))
        for name in ("spawn_speed", "move_speed", "spawn_timer", "move_timer", "ramp_index", "ramp_timer"):
            getattr(vec, name)[i] = getattr(g, name)


def play(env_id: str, steps: int, seed: int, hard: bool = False, **kwargs) -> Counter:
    """One MinAtar env and a twin of one copy drawing from a stream seeded alike; every observation (the final one
    at an episode's end too), reward and termination must agree exactly. Counts what happened."""
    game = env_id.split("/")[1].split("-")[0]
    env = gym.make(env_id, **kwargs)
    vec = make_vec(env_id, kwargs, 1, CPU)
    assert type(vec) is TWIN_OF[game]
    o, _ = env.reset(seed=seed)
    vec.draws = NumpyDraws(np.random.RandomState(seed))  # the stream ``env.reset(seed=seed)`` gave MinAtar
    obs = vec.reset()
    rng, seen, fresh = np.random.default_rng(seed), Counter(), True
    for step, a in enumerate(actions(game, env.action_space.n, rng, steps)):
        assert torch.equal(obs[0], torch.from_numpy(o).float()), f"step {step}"
        if hard and fresh:
            harden(game, env, vec, 0, rng)
        o, r, te, _, _ = env.step(int(a))
        obs, reward, terminated, truncated, final = vec.step(torch.tensor([a]))
        assert torch.equal(final[0], torch.from_numpy(o).float()), f"step {step}"
        assert (reward.item(), bool(terminated), bool(truncated)) == (r, te, False), f"step {step}"
        seen["ends"] += te
        seen["reward"] += r
        if te:
            o, _ = env.reset()
        fresh = te
    return seen


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the v0 ids are out of date
@pytest.mark.parametrize("version", ["v0", "v1"])
@pytest.mark.parametrize(("game", "steps", "ends"), [("Breakout", 2000, 50), ("Freeway", 2600, 1),
                                                     ("Asterix", 2000, 10)])
def test_twin_plays_as_minatar_step_for_step(game: str, steps: int, ends: int, version: str):
    """Freeway's episodes last 2501 steps: its run ends one and starts the next."""
    seen = play(f"MinAtar/{game}-{version}", steps, seed=7)
    assert seen["ends"] >= ends and seen["reward"] >= 5


@pytest.mark.parametrize("game", list(TWIN_OF))
def test_twin_plays_as_minatar_where_random_play_seldom_goes(game: str):
    seen = play(f"MinAtar/{game}-v1", 1000, seed=3, hard=True)
    assert seen["ends"] >= 4 and seen["reward"] >= 5


def test_asterix_without_ramp_and_other_sticky_actions():
    kwargs = {"difficulty_ramping": False, "sticky_action_prob": 0.4}
    assert make_vec("MinAtar/Asterix-v1", kwargs, 1, CPU).ramping is False
    seen = play("MinAtar/Asterix-v1", 1000, seed=5, **kwargs)
    assert seen["ends"] >= 5 and seen["reward"] >= 3


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("game", list(TWIN_OF))
def test_batch_with_masks_plays_as_minatar_copies(game: str):
    """16 copies, each stepping only where its mask holds, against 16 MinAtar envs seeded alike."""
    n, rng = 16, np.random.default_rng(0)
    envs = [gym.make(f"MinAtar/{game}-v0") for _ in range(n)]
    vec = make_vec(f"MinAtar/{game}-v0", {}, n, CPU)
    vec.draws = CopiesDraws(list(range(n)))
    obs, seen = vec.reset(), Counter()
    for i, env in enumerate(envs):
        assert torch.equal(obs[i], torch.from_numpy(env.reset(seed=i)[0]).float())
    for _ in range(200):
        action, mask = torch.as_tensor(actions(game, 6, rng, n)), torch.as_tensor(rng.random(n) < 0.7)
        before = obs
        obs, reward, terminated, truncated, final = vec.step(action, mask)
        assert not truncated.any()
        for i in range(n):
            if not mask[i]:
                assert (reward[i].item(), bool(terminated[i])) == (0.0, False)
                assert torch.equal(obs[i], before[i]) and torch.equal(final[i], before[i])
                continue
            o, r, te, _, _ = envs[i].step(int(action[i]))
            assert torch.equal(final[i], torch.from_numpy(o).float())
            assert (reward[i].item(), bool(terminated[i])) == (r, te)
            if te:
                o = envs[i].reset()[0]
            assert torch.equal(obs[i], torch.from_numpy(o).float())
            seen["ends"] += te
            seen["reward"] += r
    assert seen["reward"] > 0 and (seen["ends"] > 0 or game == "Freeway")


def run(vec, steps: int, seed: int) -> list[torch.Tensor]:
    """Everything ``steps`` steps of random actions and masks return, concatenated."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        action = torch.randint(0, 3, (vec.num_envs,), generator=g)
        mask = torch.rand(vec.num_envs, generator=g) < 0.7
        out.append(torch.cat([x.reshape(vec.num_envs, -1).float() for x in vec.step(action, mask)], 1))
    return out


@pytest.mark.parametrize("game", list(TWIN_OF))
def test_torch_draws_batch_masks_saving_and_seeding(game: str):
    env_id = f"MinAtar/{game}-v1"
    vec = make_vec(env_id, {}, 64, CPU)
    before = vec.reset(seed=1)
    g = torch.Generator().manual_seed(0)
    for _ in range(100):  # copies outside the mask stand still
        mask = torch.rand(64, generator=g) < 0.5
        obs, reward, terminated, truncated, final = vec.step(torch.randint(0, 3, (64,), generator=g), mask)
        assert torch.equal(obs[~mask], before[~mask]) and torch.equal(final[~mask], before[~mask])
        assert not reward[~mask].any() and not terminated[~mask].any() and not truncated.any()
        before = obs
    saved = vec.state_dict()
    first = run(vec, 60, seed=2)
    vec.load_state_dict(saved)
    assert all(torch.equal(a, b) for a, b in zip(first, run(vec, 60, seed=2)))
    fresh = make_vec(env_id, {}, 64, CPU)  # a new twin resumes the saved episodes exactly
    fresh.load_state_dict(saved)
    assert all(torch.equal(a, b) for a, b in zip(first, run(fresh, 60, seed=2)))
    # seeded resets: the same starts, and the same continuation where the last actions agree (MinAtar keeps them)
    a, b = make_vec(env_id, {}, 64, CPU), make_vec(env_id, {}, 64, CPU)
    assert torch.equal(a.reset(seed=5), b.reset(seed=5))
    assert all(torch.equal(x, y) for x, y in zip(run(a, 60, seed=3), run(b, 60, seed=3)))


def test_factory_picks_the_game_and_knows_every_minatar_game():
    import minatar.environments

    vec = MinAtarVecEnv(gym.make("MinAtar/Freeway-v1").unwrapped, 3, CPU)
    assert isinstance(vec, FreewayTwin) and vec.action_set.tolist() == [0, 2, 4]
    assert vec.reset().shape == (3, 10, 10, 7)
    games = {p.stem for p in Path(minatar.environments.__file__).parent.glob("*.py")}
    assert set(TWINS) == games - {"__init__"}


def test_minatar_ids_are_registered_as_minatar_registers_them(monkeypatch: pytest.MonkeyPatch):
    from gymnasium.envs import registration
    from minatar.gym import register_envs

    theirs: dict = {}
    monkeypatch.setattr(registration, "registry", theirs)
    register_envs()
    assert len(theirs) == 10 and all(gym.registry[i] == spec for i, spec in theirs.items())


def test_no_override_warning_where_minatar_registered_its_ids():
    code = ("import warnings, minatar.gym; minatar.gym.register_envs(); warnings.simplefilter('error'); "
            "import societal.environments")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
