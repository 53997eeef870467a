"""MentalRotation (the paper's §7.2, Figure 9): undo the distortion of an MNIST digit in two steps.

An episode shows a digit on a 64×64 canvas, distorted by a rotation of ±60° followed by a
translation of 0.29 (``affine_grid`` units, ≈ 9 px) up, down, left or right: 8 distortions, drawn
on the fly (the 2020 code stored all 480,000 images). The primitives are six functions of the
image, in the original's order: rotate 60° counter-clockwise, rotate 60° clockwise, translate up,
down, left, right. After two of them a frozen classifier judges the image: reward 1 if it names the
digit, else 0 (the only reward). The solution: undo the translation, then the rotation.

The functions are the environment's actions (action i applies function i to the state), so a society
or a monolithic policy composes a computation graph one auction at a time. Training uses the MNIST
training split, evaluation the test split (``split="test"``).
"""

from __future__ import annotations

import copy
import math

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from societal.environments.state import SavedState

FUNCTIONS = ("rotate_ccw", "rotate_cw", "translate_up", "translate_down", "translate_left", "translate_right")
STEPS = 2


def thetas(degrees: float = 60.0, shift: float = 0.29) -> Tensor:
    """The six affine maps as ``affine_grid`` matrices ``[6, 2, 3]`` (output → input coordinates)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return torch.tensor([
        [[c, -s, 0.0], [s, c, 0.0]],  # content turns counter-clockwise (y points down)
        [[c, s, 0.0], [-s, c, 0.0]],  # clockwise
        [[1.0, 0.0, 0.0], [0.0, 1.0, shift]],  # content moves up
        [[1.0, 0.0, 0.0], [0.0, 1.0, -shift]],  # down
        [[1.0, 0.0, shift], [0.0, 1.0, 0.0]],  # left
        [[1.0, 0.0, -shift], [0.0, 1.0, 0.0]],  # right
    ])


THETAS = thetas()


def transform(images: Tensor, function: Tensor) -> Tensor:
    """Apply function ``function[b]`` to ``images[b]`` (``[B, 1, H, W]``): bilinear, border padding."""
    theta = THETAS.to(images.device)[function]
    grid = F.affine_grid(theta, list(images.shape), align_corners=True)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)


def distort(images: Tensor, distortion: Tensor) -> Tensor:
    """Distortion d ∈ 0..7: rotation d // 4 (CCW, CW), then translation d % 4 (up, down, left, right)."""
    return transform(transform(images, distortion // 4), 2 + distortion % 4)


class MentalRotation(gym.Env):
    """One episode at a time (the batched twin is ``MentalRotationVecEnv``)."""

    metadata = {"render_modes": ["rgb_array"]}  # noqa: RUF012  (Gymnasium convention)

    def __init__(self, split: str = "train", mnist_dir: str | None = None, classifier=None, render_mode=None):
        from societal.environments.mnist_classifier import load_classifier
        from societal.environments.mnist_data import load_mnist

        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        data = load_mnist(mnist_dir)
        self.digits, self.labels = (data.x_train, data.y_train) if split == "train" else (data.x_test, data.y_test)
        # Trained on first use (a few minutes), then read from its cache: `societal mnist-classifier`.
        self.classifier = classifier if classifier is not None else load_classifier(mnist_dir=mnist_dir, log=print)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1, 64, 64), np.float32)
        self.action_space = gym.spaces.Discrete(len(FUNCTIONS))
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        from societal.environments.mnist_classifier import canvas

        i, d = int(self.np_random.integers(len(self.labels))), int(self.np_random.integers(8))
        self.label, self.t = int(self.labels[i]), 0
        self.image = distort(canvas(self.digits[i : i + 1]), torch.tensor([d]))
        return self.image[0].numpy(), {"label": self.label, "distortion": d}

    def step(self, action):
        self.image = transform(self.image, torch.tensor([int(action)]))
        self.t += 1
        reward = 0.0
        if self.t == STEPS:
            with torch.no_grad():
                reward = float(self.classifier(self.image).argmax(-1).item() == self.label)
        return self.image[0].numpy(), reward, self.t == STEPS, False, {"label": self.label}

    def render(self):
        return (np.repeat(self.image[0, 0].numpy()[..., None], 3, axis=2) * 255).astype(np.uint8)


class MentalRotationVecEnv(SavedState):
    """``num_envs`` MentalRotation episodes stepped together in torch, reset in the same step."""

    discrete, codes, indexed = False, None, False
    STATE = ("image", "label", "distortion", "t")

    def __init__(self, env: MentalRotation, num_envs: int, device: torch.device) -> None:
        self.num_envs, self.device = num_envs, device
        self.classifier = copy.deepcopy(env.classifier).to(device)
        self.digits = torch.tensor(np.asarray(env.digits), device=device)  # a copy: the loader's arrays are read-only
        self.labels = torch.tensor(np.asarray(env.labels), device=device)
        self.generator = torch.Generator(device=device)
        self.image = torch.zeros(num_envs, 1, 64, 64, device=device)
        self.label = torch.zeros(num_envs, dtype=torch.long, device=device)
        self.distortion = torch.zeros(num_envs, dtype=torch.long, device=device)
        self.t = torch.zeros(num_envs, dtype=torch.long, device=device)

    def _new(self, rows: Tensor) -> None:
        from societal.environments.mnist_classifier import canvas

        n = int(rows.sum())
        index = torch.randint(len(self.labels), (n,), generator=self.generator, device=self.device)
        distortion = torch.randint(8, (n,), generator=self.generator, device=self.device)
        self.image[rows] = distort(canvas(self.digits[index]).to(self.device), distortion)
        self.label[rows], self.distortion[rows], self.t[rows] = self.labels[index], distortion, 0

    def reset(self, seed: int | None = None) -> Tensor:
        self.generator.manual_seed(seed if seed is not None else int(torch.randint(2**31, ())))
        self._new(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        return self.image.clone()

    def step(self, action: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        mask = torch.ones_like(self.t, dtype=torch.bool) if mask is None else mask
        moved = transform(self.image, action)
        self.image = torch.where(mask.view(-1, 1, 1, 1), moved, self.image)
        self.t += mask.long()
        terminated = mask & (self.t == STEPS)
        reward = torch.zeros(self.num_envs, device=self.device)
        if terminated.any():
            with torch.no_grad():
                correct = self.classifier(self.image[terminated]).argmax(-1) == self.label[terminated]
            reward[terminated] = correct.float()
        final = self.image.clone()
        if terminated.any():
            self._new(terminated)
        return self.image.clone(), reward, terminated, torch.zeros_like(terminated), final
