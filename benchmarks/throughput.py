"""Training throughput of societal on this machine (not a test: it prints numbers).

1. Full training (collection + PPO update) on Bandit (with agent dropout) and Chain with the
   paper's hyperparameters (4,096 auction steps per update, minibatch 256, cloned ccv, r = 2),
   eager and with ``compile=True``: env steps/s of collection, of the update, and of both.
2. Scaling with the number of primitives P = 4, 16, 64, 256 (a P-armed Bandit, r = 2 clones):
   time per auction with one environment, time per auction step of 256 environments at once, and
   time per PPO update (4,096 auction steps: 8,192 samples for each of the P learners).

    python benchmarks/throughput.py            # about 3 minutes on 2 cores
"""

from __future__ import annotations

import platform
import statistics
import time
from datetime import date

import torch

from societal.environments.vector import make, make_vec, obs_shape
from societal.learning.ppo import PPO
from societal.learning.rollout import Collector
from societal.primitives import LiteralActions
from societal.society import Society

PAPER = dict(policy_lr=4e-5, value_lr=5e-3, clip=0.2, entropy=0.1, value_l2=1e-3, max_grad_norm=40.0, minibatch=256)


def setup(env_id: str, num_envs: int, dropout: bool, compile: bool, **env_kwargs):
    env = make(env_id, **env_kwargs)
    society = Society(obs_shape(env.observation_space), env.action_space.n)
    collector = Collector(society, LiteralActions(env.action_space.n), make_vec(env_id, env_kwargs, num_envs,
                          torch.device("cpu")), "ccv", 0.99, dropout)
    return collector, PPO(society, compile=compile, **PAPER)


def training(env_id: str, dropout: bool, compile: bool, num_envs: int = 256, updates: int = 15) -> dict:
    collector, ppo = setup(env_id, num_envs, dropout, compile)
    steps = 4096 // num_envs
    for _ in range(3):  # warm-up (and compilation)
        ppo.update(collector.collect(steps).samples(ppo.agent))
    collect, update = [], []
    for _ in range(updates):
        t0 = time.perf_counter()
        rollout = collector.collect(steps)
        t1 = time.perf_counter()
        ppo.update(rollout.samples(ppo.agent))
        update.append(time.perf_counter() - t1)
        collect.append(t1 - t0)
    c, u = statistics.median(collect), statistics.median(update)
    n = rollout.env_steps
    return {"collect": n / c, "update": n / u, "total": n / (c + u)}


def best_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(repeats):
            fn()
        times.append((time.perf_counter() - t) / repeats)
    return min(times)


def scaling(primitives: int) -> dict:
    single, _ = setup("societal/Bandit-v0", 1, False, False, arms=primitives)
    batched, ppo = setup("societal/Bandit-v0", 256, False, False, arms=primitives)
    rollout = batched.collect(16)
    # A rollout of n auction steps, divided by n: bids, auction, env step and (amortised) utilities.
    return {"auction_1env_us": best_time(lambda: single.collect(64), 5) / 64 * 1e6,
            "step_256env_us": best_time(lambda: batched.collect(16), 5) / 16 * 1e6,
            "update_ms": best_time(lambda: ppo.update(rollout.samples(ppo.agent)), 2) * 1e3}


def main() -> None:
    torch.set_num_threads(1)
    print(f"societal throughput, {date.today()}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch thread, torch {torch.__version__}")
    print("\nfull training, paper hyperparameters, 256 envs (env steps/s, medians of 15 updates)")
    print(f"{'task':<22}{'mode':<10}{'collect':>10}{'update':>10}{'total':>10}")
    for env_id, dropout in (("societal/Bandit-v0", True), ("societal/Chain-v0", False)):
        for compile in (False, True):
            r = training(env_id, dropout, compile)
            mode = "compiled" if compile else "eager"
            print(f"{env_id:<22}{mode:<10}{r['collect']:>10.0f}{r['update']:>10.0f}{r['total']:>10.0f}")
    print("\nscaling with primitives (P-armed Bandit, 2 clones each; best of 5)")
    print(f"{'P':>5}{'bidders':>9}{'auction, 1 env':>17}{'step, 256 envs':>17}{'PPO update':>13}")
    base = None
    for p in (4, 16, 64, 256):
        r = scaling(p)
        base = base or r
        ratio = ", ".join(f"×{r[key] / base[key]:.2f}" for key in r)
        print(f"{p:>5}{2 * p:>9}{r['auction_1env_us']:>12.0f} µs{r['step_256env_us']:>12.0f} µs"
              f"{r['update_ms']:>10.0f} ms   ({ratio})")

if __name__ == "__main__":
    main()
