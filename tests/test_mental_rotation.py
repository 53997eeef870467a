"""MentalRotation: the six affine functions, the distortions, and the two-step episode."""

import math

import numpy as np
import pytest
import torch

from societal.environments.mental_rotation import FUNCTIONS, MentalRotation, MentalRotationVecEnv, distort, transform

PX = 0.29 * 63 / 2  # a translation of 0.29 in affine_grid units (align_corners=True) is ≈ 9.1 pixels


def blob(y: int, x: int) -> torch.Tensor:
    image = torch.zeros(1, 1, 64, 64)
    image[0, 0, y - 1 : y + 2, x - 1 : x + 2] = 1.0
    return image


def centroid(image: torch.Tensor) -> tuple[float, float]:
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    w = image[0, 0].clamp(min=0)
    return float((w * ys).sum() / w.sum()), float((w * xs).sum() / w.sum())


@pytest.mark.parametrize("name,dy,dx", [("translate_up", -PX, 0), ("translate_down", PX, 0),
                                        ("translate_left", 0, -PX), ("translate_right", 0, PX)])
def test_translations_move_the_content(name, dy, dx):
    moved = transform(blob(31, 31), torch.tensor([FUNCTIONS.index(name)]))
    y, x = centroid(moved)
    assert (y - 31, x - 31) == (pytest.approx(dy, abs=0.3), pytest.approx(dx, abs=0.3))


@pytest.mark.parametrize("name,sign", [("rotate_ccw", 1), ("rotate_cw", -1)])
def test_rotations_turn_the_content_by_60_degrees(name, sign):
    centre = 31.5
    moved = transform(blob(11, 31), torch.tensor([FUNCTIONS.index(name)]))  # a dot straight above the centre
    y, x = centroid(moved)
    angle = math.degrees(math.atan2(centre - y, x - centre))  # counter-clockwise from the x axis, y up
    assert angle == pytest.approx(90 + sign * 60, abs=3)


def digit_like() -> torch.Tensor:
    image = torch.zeros(1, 1, 64, 64)
    image[0, 0, 20:44, 29:35] = 1.0  # a bar with a foot: not symmetric under any of the maps
    image[0, 0, 40:44, 29:42] = 1.0
    return image


@pytest.mark.parametrize("a,b", [("rotate_ccw", "rotate_cw"), ("translate_up", "translate_down"),
                                 ("translate_left", "translate_right")])
def test_inverse_pairs_compose_to_nearly_the_identity(a, b):
    image = digit_like()
    moved = transform(image, torch.tensor([FUNCTIONS.index(a)]))
    back = transform(moved, torch.tensor([FUNCTIONS.index(b)]))
    assert (back - image).abs().mean() < 0.25 * (moved - image).abs().mean()  # only bilinear blur remains


def test_undoing_translation_then_rotation_beats_the_wrong_order():
    image = digit_like().expand(8, 1, 64, 64)
    distorted = distort(image, torch.arange(8))
    rotation, translation = torch.arange(8) // 4, torch.arange(8) % 4
    undo_rotation, undo_translation = 1 - rotation, 2 + (translation ^ 1)  # ccw ↔ cw, up ↔ down, left ↔ right
    right = transform(transform(distorted, undo_translation), undo_rotation)
    wrong = transform(transform(distorted, undo_rotation), undo_translation)
    right_error = (right - image).abs().mean((1, 2, 3))
    assert (right_error < 0.03).all()
    assert ((wrong - image).abs().mean((1, 2, 3)) > 2 * right_error).all()


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    y = np.arange(20) % 10
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    return str(tmp_path)


class Constant(torch.nn.Module):
    """A stand-in classifier that always answers ``digit``."""

    def __init__(self, digit: int) -> None:
        super().__init__()
        self.digit = digit

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.full((len(images),), self.digit), 10).float()


def test_an_episode_is_two_functions_and_a_terminal_reward(mnist_dir):
    env = MentalRotation(split="test", mnist_dir=mnist_dir, classifier=Constant(3))
    obs, info = env.reset(seed=1)
    assert obs.shape == (1, 64, 64) and 0 <= info["distortion"] < 8
    _, r1, term1, trunc1, _ = env.step(0)
    _, r2, term2, trunc2, _ = env.step(5)
    assert (r1, term1, trunc1) == (0.0, False, False) and term2 and not trunc2
    assert r2 == float(info["label"] == 3)


def test_the_batched_twin_rewards_the_classifiers_verdict(mnist_dir):
    env = MentalRotationVecEnv(MentalRotation(mnist_dir=mnist_dir, classifier=Constant(3)), 64, torch.device("cpu"))
    obs = env.reset(seed=0)
    labels = env.label.clone()
    obs2, r, term, trunc, _ = env.step(torch.zeros(64, dtype=torch.long))
    assert not term.any() and r.abs().sum() == 0 and not torch.equal(obs, obs2)
    _, r, term, trunc, final = env.step(torch.full((64,), 2))
    assert term.all() and not trunc.any()
    assert torch.equal(r, (labels == 3).float())  # reward 1 exactly when the classifier names the digit
    assert torch.equal(final, transform(obs2, torch.full((64,), 2)))
    assert (env.t == 0).all()  # every episode was reset in the same step
    masked = env.step(torch.zeros(64, dtype=torch.long), torch.arange(64) < 10)
    assert (env.t[:10] == 1).all() and (env.t[10:] == 0).all() and not masked[2].any()


@pytest.mark.parametrize("agent", ["society", "monolithic"])
def test_a_short_training_run_writes_the_function_table_and_strips(mnist_dir, tmp_path, monkeypatch, agent):
    import pandas as pd

    import societal

    monkeypatch.setenv("SOCIETAL_CACHE", str(tmp_path / "cache"))  # the classifier is trained on the tiny set
    run = societal.train("societal/MentalRotation-v0", agent=agent, network="mnist_cnn", steps=256, num_envs=16,
                         auction_steps_per_update=64, minibatch=32, eval_episodes=8, out=tmp_path / "run",
                         env_kwargs={"mnist_dir": mnist_dir}, eval_env_kwargs={"split": "test"}, progress=False)
    m = run.metrics
    assert m.env_steps.iloc[-1] == m.auction_steps.iloc[-1] and m.eval_success_rate.dropna().eq(1).all()
    table = pd.read_csv(run.path / "qualitative" / "function_table.csv")
    assert len(table) == 16 and set(table.step) == {1, 2}  # 8 distortions × 2 steps
    total = table[list(FUNCTIONS)].sum(axis=1)  # win frequencies of a row sum to 1 (0: no episode had it)
    assert ((total - 1).abs() < 0.01).sum() + (total == 0).sum() == len(table)
    assert (run.path / "qualitative" / "episode_0.png").is_file()


def test_the_oracle_report_scores_each_order(mnist_dir, tmp_path, monkeypatch):
    from societal.experiments.report import mental_rotation_oracle

    monkeypatch.setenv("SOCIETAL_CACHE", str(tmp_path / "cache"))
    scores = mental_rotation_oracle(mnist_dir)
    assert set(scores) == {"centred", "distorted", "right_order", "wrong_order"}
    assert all(0 <= v <= 1 for v in scores.values())
