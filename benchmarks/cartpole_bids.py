"""What a trained CartPole society bids, against what its states are worth (not a test: it prints numbers).

For the run folder given (its last checkpoint), 512 episodes from seeded starts, and:

1. the mean episode length with sampled bids (training's auctions) and with mean bids (greedy evaluation);
2. the discounted return G of the rewards the market is paid (``reward_scale·r + reward_shift``) at every
   step, against the winner's mean bid there (at equilibrium it bids Q(s, a) = E[G]);
3. the gap between the two primitives' mean bids, against the bids' standard deviation, and who wins;
4. at 64 visited states, Q^π(s, a) of the society's own sampled policy by Monte Carlo (32 rollouts per
   action): the action gap the bids must express, and whether the bids order the actions as Q^π does.

    python benchmarks/cartpole_bids.py RUN_DIR
"""

from __future__ import annotations

import math
import sys

import gymnasium as gym
import torch
from torch import Tensor

from societal.environments.classic_vec import CartPoleVecEnv
from societal.run import load
from societal.society import Society


def episodes(society: Society, vec: CartPoleVecEnv, greedy: bool, first: Tensor | None = None) -> list[tuple]:
    """Auctions until every copy's first episode ends: per step ``(obs, mean bids, bid std, primitive, reward,
    alive, done)``; ``first``: the primitives of the first step (Monte Carlo action values)."""
    obs, alive, log = vec.state.float(), torch.ones(vec.num_envs, dtype=torch.bool), []
    for t in range(vec.max_episode_steps):
        alpha, beta = society.bidder_distributions(obs)
        mean = alpha / (alpha + beta)
        std = (mean * (1 - mean) / (alpha + beta + 1)).sqrt()
        bids = mean if greedy else torch.distributions.Beta(alpha, beta).sample()
        primitive = society.primitive_of[bids.argmax(1)] if first is None or t else first
        next_obs, reward, terminated, truncated, _ = vec.step(primitive)
        done = terminated | truncated
        log.append((obs, mean, std, primitive, reward * alive, alive.clone(), done))
        alive &= ~done
        obs = next_obs
        if not alive.any():
            break
    return log


def returns(log: list[tuple], gamma: float, scale: float, shift: float) -> list[Tensor]:
    """The discounted return to go of the market's rewards at every step of ``log``."""
    g, out = torch.zeros_like(log[0][4]), []
    for *_, reward, alive, done in reversed(log):
        g = scale * reward + shift * alive + gamma * g * ~done
        out.append(g)
    return out[::-1]


def action_values(society: Society, states: Tensor, gamma: float, scale: float, shift: float, k: int = 32
                  ) -> tuple[Tensor, Tensor]:
    """Monte Carlo Q^π(s, a) ``[S, 2]`` of the sampled policy at ``states`` (float64), and its standard error."""
    vec = CartPoleVecEnv(gym.make("CartPole-v1").unwrapped, len(states) * 2 * k)
    vec.max_episode_steps = 500
    vec.reset(seed=2)
    vec.state = states.repeat_interleave(2 * k, 0)
    first = torch.arange(2).repeat_interleave(k).repeat(len(states))
    g = returns(episodes(society, vec, False, first), gamma, scale, shift)[0].view(len(states), 2, k)
    return g.mean(2), g.std(2) / math.sqrt(k)


def main(path: str) -> None:
    torch.manual_seed(0)
    run = load(path, "last")
    society, c = run.agent, run.config
    vec = CartPoleVecEnv(gym.make("CartPole-v1").unwrapped, 512)
    vec.max_episode_steps = 500
    for greedy in (False, True):
        vec.reset(seed=1)
        length = torch.stack([step[5] for step in episodes(society, vec, greedy)]).sum(0).float().mean()
        print(f"{'greedy' if greedy else 'sampled'} episode length: {length:.1f}")
    vec.reset(seed=1)
    log = episodes(society, vec, False)
    alive = torch.cat([step[5] for step in log])
    obs, mean, std, primitive = (torch.cat([step[i] for step in log])[alive] for i in range(4))
    g = torch.cat(returns(log, c.gamma, c.reward_scale, c.reward_shift))[alive]
    by_primitive = torch.stack([mean[:, society.primitive_of == p].mean(1) for p in range(2)], 1)
    winning = by_primitive.gather(1, primitive[:, None])[:, 0]
    print(f"discounted return G: mean {g.mean():.3f} (max {g.max():.3f}); winner's mean bid {winning.mean():.3f}; "
          f"correlation {torch.corrcoef(torch.stack([winning, g]))[0, 1]:.2f}")
    bid_gap = by_primitive[:, 0] - by_primitive[:, 1]
    print(f"|mean bid gap| {bid_gap.abs().mean():.4f}; bid std {std.mean():.4f}; "
          f"primitive 0 wins {(primitive == 0).float().mean():.2f}")
    pick = torch.randperm(len(obs))[:64]
    q, error = action_values(society, obs[pick].double(), c.gamma, c.reward_scale, c.reward_shift)
    gap = q[:, 0] - q[:, 1]
    clear = gap.abs() > 2 * error.max(1).values
    agree = (gap.sign() == bid_gap[pick].sign()) & clear
    print(f"Q^pi: mean {q.mean():.3f}; |action gap| mean {gap.abs().mean():.4f}; correlation of bid gap and action "
          f"gap {torch.corrcoef(torch.stack([gap, bid_gap[pick]]))[0, 1]:.2f}; bids order the actions as Q^pi at "
          f"{int(agree.sum())} of {int(clear.sum())} states with a clear gap")


if __name__ == "__main__":
    main(sys.argv[1])
