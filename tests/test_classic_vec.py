"""CartPoleVecEnv against Gymnasium's CartPole, step by step: same observations, rewards and flags."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from societal.environments.classic_vec import CartPoleVecEnv
from societal.environments.vector import make_vec

CPU = torch.device("cpu")


def follow(vec: CartPoleVecEnv, envs: list[gym.Env]) -> None:
    """Put every Gymnasium copy where the twin's copy is (its state and elapsed steps)."""
    for i, env in enumerate(envs):
        env.unwrapped.state = vec.state[i].numpy().copy()
        env.unwrapped.steps_beyond_terminated = None
        env._elapsed_steps = int(vec.t[i])


def run_both(env_id: str, steps: int, masked: bool, **kwargs) -> dict:
    """Random actions (and masks) in both; every output must agree bit for bit. Counts what happened."""
    n, rng = 16, np.random.default_rng(0)
    vec = make_vec(env_id, kwargs, n, CPU)
    assert isinstance(vec, CartPoleVecEnv)
    envs = [gym.make(env_id, **kwargs) for _ in range(n)]
    for env in envs:
        env.reset(seed=0)
    obs = vec.reset(seed=1)
    follow(vec, envs)
    seen = {"terminated": 0, "truncated": 0, "masked": 0}
    for _ in range(steps):
        action = torch.as_tensor(rng.integers(0, 2, n))
        mask = torch.as_tensor(rng.random(n) < 0.8) if masked else None
        before = obs
        obs, reward, terminated, truncated, final = vec.step(action, mask)
        assert obs.dtype == final.dtype == reward.dtype == torch.float32
        for i, env in enumerate(envs):
            if mask is not None and not mask[i]:
                assert (reward[i].item(), bool(terminated[i]), bool(truncated[i])) == (0.0, False, False)
                assert torch.equal(obs[i], before[i]) and torch.equal(final[i], before[i])
                seen["masked"] += 1
                continue
            o, r, te, tr, _ = env.step(int(action[i]))
            assert torch.equal(final[i], torch.from_numpy(o))
            assert (reward[i].item(), bool(terminated[i]), bool(truncated[i])) == (r, te, tr)
            seen["terminated"] += te
            seen["truncated"] += tr
        follow(vec, envs)  # finished copies were reset: Gymnasium follows the twin's new start
        assert torch.equal(obs, vec.state.float())
    return seen


def test_cartpole_matches_gymnasium_step_for_step():
    seen = run_both("CartPole-v1", 400, masked=False, max_episode_steps=30)
    assert seen["terminated"] > 20 and seen["truncated"] > 20


def test_masked_copies_stand_still_and_sutton_barto_reward():
    seen = run_both("CartPole-v1", 200, masked=True, sutton_barto_reward=True)
    assert seen["masked"] > 100 and seen["terminated"] > 20 and seen["truncated"] == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # CartPole-v0 is out of date
@pytest.mark.parametrize(("env_id", "limit"), [("CartPole-v1", 500), ("CartPole-v0", 200)])
def test_time_limit_comes_from_gymnasium_make(env_id: str, limit: int):
    assert make_vec(env_id, {}, 2, CPU).max_episode_steps == limit
    assert make_vec(env_id, {"max_episode_steps": 7}, 2, CPU).max_episode_steps == 7


def test_starts_are_uniform_in_the_reset_box_and_seeded():
    vec = CartPoleVecEnv(gym.make("CartPole-v1").unwrapped, 4096, CPU)
    a = vec.reset(seed=3)
    assert a.abs().max() <= 0.05 and a.min() < -0.049 and a.max() > 0.049
    assert abs(a.mean().item()) < 0.002
    assert torch.equal(a, vec.reset(seed=3))
