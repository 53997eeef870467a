"""Can a small bidder network tell CartPole's actions apart? (not a test: it prints numbers)

Regression, not a market: Q^random(s, a) of the random policy, with rewards scaled by 0.01 (as the
``control`` preset's ``auto_scale`` does) and γ = 0.99, by Monte Carlo (32 rollouts per action) at 4,000
states of random play; then MLPs of several shapes with a sigmoid output (a bid's mean), one per action,
fitted to it by least squares on 3,000 states, and on the other 1,000: the mean value error and the
fraction of states with a clear action gap (beyond 2 standard errors) where the fit orders the actions as
Q does. Shape ``()`` is linear: a bidder of ``hidden=(16,)`` has no ReLU (as the paper's), so its bid is a
sigmoid of a linear function of the observation.

    python benchmarks/cartpole_capacity.py
"""

from __future__ import annotations

import math

import gymnasium as gym
import torch
from torch import Tensor, nn

from societal.environments.classic_vec import CartPoleVecEnv

GAMMA, SCALE, ROLLOUTS = 0.99, 0.01, 32


def cartpole(n: int, seed: int) -> CartPoleVecEnv:
    vec = CartPoleVecEnv(gym.make("CartPole-v1").unwrapped, n)
    vec.max_episode_steps = 500
    vec.reset(seed=seed)
    return vec


def visited_states(n: int) -> Tensor:
    """``n`` states (float64) of random play from 256 starts, over their first 40 steps."""
    vec, states = cartpole(256, 0), []
    for _ in range(40):
        states.append(vec.state.clone())
        vec.step(torch.randint(0, 2, (256,)))
    return torch.cat(states)[torch.randperm(len(states) * 256)[:n]]


def random_policy_q(states: Tensor) -> tuple[Tensor, Tensor]:
    """Monte Carlo Q^random ``[S, 2]`` and its largest standard error per state ``[S]``."""
    vec = cartpole(len(states) * 2 * ROLLOUTS, 1)
    vec.state = states.repeat_interleave(2 * ROLLOUTS, 0)
    first = torch.arange(2).repeat_interleave(ROLLOUTS).repeat(len(states))
    g, discount = torch.zeros(len(vec.state), dtype=torch.float64), 1.0
    alive = torch.ones(len(g), dtype=torch.bool)
    for t in range(vec.max_episode_steps):
        _, reward, terminated, truncated, _ = vec.step(first if t == 0 else torch.randint(0, 2, (len(g),)))
        g += SCALE * discount * reward * alive
        discount *= GAMMA
        alive &= ~(terminated | truncated)
        if not alive.any():
            break
    g = g.view(len(states), 2, ROLLOUTS).float()
    return g.mean(2), g.std(2).max(1).values / math.sqrt(ROLLOUTS)


def mlp(hidden: tuple[int, ...], outputs: int) -> nn.Sequential:
    layers, width = [], 4
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, outputs), nn.Sigmoid())


def fit(hidden: tuple[int, ...], x: Tensor, q: Tensor, steps: int = 3000) -> nn.Module:
    """A network per action (as a society's learners), fitted to ``q`` by least squares."""
    nets = nn.ModuleList([mlp(hidden, 1), mlp(hidden, 1)])
    optimiser = torch.optim.Adam(nets.parameters(), 3e-3)
    for _ in range(steps):
        i = torch.randint(0, len(x), (256,))
        loss = ((torch.cat([net(x[i]) for net in nets], 1) - q[i]) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return nets


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    states = visited_states(4000)
    q, error = random_policy_q(states)
    x, gap = states.float(), q[:, 0] - q[:, 1]
    clear = gap.abs() > 2 * error
    print(f"Q mean {q.mean():.3f}; |action gap| mean {gap.abs().mean():.4f}; clear gaps at {int(clear.sum())} of "
          f"{len(q)} states")
    train, test = slice(0, 3000), slice(3000, 4000)
    for hidden in ((), (16,), (64,), (16, 16), (32, 32)):  # (): linear, as a bidder of hidden=(16,) (no ReLU)
        nets = fit(hidden, x[train], q[train])
        with torch.no_grad():
            p = torch.cat([net(x[test]) for net in nets], 1)
        right = ((p[:, 0] - p[:, 1]).sign() == gap[test].sign()) & clear[test]
        print(f"hidden {hidden}: value error {(p - q[test]).abs().mean():.4f}; right order at "
              f"{right.sum().item() / clear[test].sum().item():.2f} of the clear gaps")


if __name__ == "__main__":
    main()
