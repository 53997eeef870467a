"""Training throughput of societal on this machine (not a test: it prints numbers).

1. Steady-state training (collection + PPO update) on Bandit (with agent dropout) and Chain with the
   paper's hyperparameters (4,096 auction steps per update, minibatch 256, cloned ccv, r = 2, 256
   environments), eager and compiled, next to the 2020 code's figures on the same 2-core machine.
2. The README's main job (Chain, 10 M env steps) as a whole process, with Inductor's cache as it is and
   with an empty one (a cold start).
3. Scaling with the number of primitives P = 4 … 1,024 (a P-armed Bandit, r = 2 clones): the cost of
   an auction step of 256 environments per bid drawn, and of a PPO update per learner.
4. Gymnasium toy-text tasks: training as a batched table in torch against copies of the Gymnasium env.
5. Tasks without a table, CartPole-v1 and MinAtar Breakout, with the settings a user gets (the default preset):
   the society against our monolithic PPO at the same settings and at its users' (the ``ppo`` preset: 4 envs on
   CartPole; ``ppo_minatar`` on MinAtar), stepped by the torch twin and by copies of the Gymnasium env.

    python benchmarks/throughput.py            # about 8 minutes on 2 cores
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date

import torch

from societal.config import from_preset
from societal.environments.vector import GymVecEnv, make, make_vec, obs_shape
from societal.learning.build import build
from societal.learning.ppo import PPO
from societal.learning.rollout import Collector
from societal.primitives import LiteralActions
from societal.society import Society

PAPER = dict(policy_lr=4e-5, value_lr=5e-3, clip=0.2, entropy=0.1, value_l2=1e-3, max_grad_norm=40.0, minibatch=256)
# The 2020 code (github.com/mbchang/decentralized-rl), run on this machine on 2026-11-30 with the paper's settings:
# one torch thread, serial collection (its faster setting here), env steps/s of collection + update.
ORIGINAL = {"societal/Chain-v0": 2655, "societal/Bandit-v0": 671}
MAIN_JOB = ["train", "societal/Chain-v0", "--mechanism", "ccv", "--steps", "10000000", "--quiet"]


def setup(env_id: str, num_envs: int, dropout: bool, compile: bool, gym_copies: bool = False, **env_kwargs):
    env = make(env_id, **env_kwargs)
    society = Society(obs_shape(env.observation_space), env.action_space.n)
    device = torch.device("cpu")
    vec = GymVecEnv(env_id, env_kwargs, num_envs, device) if gym_copies else make_vec(env_id, env_kwargs, num_envs,
                                                                                         device)
    collector = Collector(society, LiteralActions(env.action_space.n), vec, "ccv", 0.99, dropout, compile=compile)
    return collector, PPO(society, compile=compile, **PAPER)


def training(env_id: str, dropout: bool = False, compile: bool = False, num_envs: int = 256, updates: int = 15,
             gym_copies: bool = False) -> dict:
    collector, ppo = setup(env_id, num_envs, dropout, compile, gym_copies)
    steps = 4096 // num_envs
    for _ in range(2):  # the first update starts compiling the PPO step, the second rollout the auction step
        ppo.update(collector.collect(steps).samples(ppo.agent))
    ppo.finish_compiling()
    collector.finish_compiling()
    for _ in range(2):  # warm-up (and the switch to the compiled functions)
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


def whole_run(cold: bool) -> float:
    """Seconds of the main job as a process (import, build, training, evaluation, outputs); ``cold``: with nothing
    of Inductor's on disk (its cache and anything else it keeps under the temporary folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, **({"TORCHINDUCTOR_CACHE_DIR": f"{tmp}/inductor", "TMPDIR": tmp} if cold else {})}
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "societal", *MAIN_JOB, "--out", f"{tmp}/run"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        return time.perf_counter() - t


def control(env_id: str, preset: str | None, gym_copies: bool, updates: int = 10, **settings) -> dict:
    """Steady-state training (env steps/s, medians) on ``env_id`` with ``preset`` (None: its default) and
    ``settings``, stepped by the batched twin or (``gym_copies``) by copies of the Gymnasium env."""
    config = from_preset(preset, env_id, compile=False, **settings).validate()
    parts = build(config)
    collector, learner = parts.collector, parts.learner
    if gym_copies:
        collector.env = GymVecEnv(env_id, config.env_kwargs, config.num_envs, parts.device)
        collector.start_episodes(0)
    collect, update = [], []
    for i in range(updates + 2):  # two warm-up updates
        t0 = time.perf_counter()
        batch = collector.gather(parts.steps_per_rollout)
        t1 = time.perf_counter()
        learner.update(batch.samples)
        if i >= 2:
            collect.append(t1 - t0)
            update.append(time.perf_counter() - t1)
    c, u, n = statistics.median(collect), statistics.median(update), batch.env_steps
    return {"collect": n / c, "update": n / u, "total": n / (c + u)}


def best_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(repeats):
            fn()
        times.append((time.perf_counter() - t) / repeats)
    return min(times)


def scaling(primitives: int) -> dict:
    collector, ppo = setup("societal/Bandit-v0", 256, False, False, arms=primitives)
    rollout = collector.collect(16)
    samples = rollout.samples(ppo.agent)
    step = best_time(lambda: collector.collect(16), 2) / 16
    update = best_time(lambda: ppo.update(samples), 1)
    return {"bid_ns": step / (256 * 2 * primitives) * 1e9, "step_ms": step * 1e3,
            "learner_ms": update / primitives * 1e3, "update_ms": update * 1e3}


def main() -> None:
    torch.set_num_threads(1)
    print(f"societal throughput, {date.today()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, 1 torch thread, torch {torch.__version__}")
    print("\n1. steady-state training, paper hyperparameters, 256 envs (env steps/s, medians of 15 updates)")
    print(f"{'task':<22}{'mode':<10}{'collect':>10}{'update':>10}{'total':>10}{'original':>10}{'ratio':>8}")
    for env_id, dropout in (("societal/Bandit-v0", True), ("societal/Chain-v0", False)):
        for compile in (False, True):
            r = training(env_id, dropout, compile)
            print(f"{env_id:<22}{'compiled' if compile else 'eager':<10}{r['collect']:>10.0f}{r['update']:>10.0f}"
                  f"{r['total']:>10.0f}{ORIGINAL[env_id]:>10}{r['total'] / ORIGINAL[env_id]:>7.0f}×")

    print(f"\n2. the main job as a whole process: societal {' '.join(MAIN_JOB)}")
    for cold in (False, True):
        print(f"   {'empty (cold) compile cache' if cold else 'compile cache as it is':<28}{whole_run(cold):>7.1f} s")

    print("\n3. scaling with primitives (P-armed Bandit, 2 clones each, 256 envs; best of 3)")
    print(f"{'P':>6}{'bidders':>9}{'auction step':>14}{'per bid':>10}{'PPO update':>12}{'per learner':>13}")
    for p in (4, 16, 64, 256, 1024):
        r = scaling(p)
        print(f"{p:>6}{2 * p:>9}{r['step_ms']:>11.2f} ms{r['bid_ns']:>7.0f} ns{r['update_ms']:>9.0f} ms"
              f"{r['learner_ms']:>10.2f} ms")

    print("\n4. toy-text tasks, training (env steps/s): a batched table against copies of the Gymnasium env")
    print(f"{'task':<22}{'table, compiled':>17}{'table, eager':>14}{'copies, eager':>15}")
    for env_id in ("FrozenLake-v1", "Taxi-v4"):
        runs = [training(env_id, compile=c, updates=5, gym_copies=g)["total"] for c, g in
                ((True, False), (False, False), (False, True))]
        print(f"{env_id:<22}{runs[0]:>17.0f}{runs[1]:>14.0f}{runs[2]:>15.0f}")

    print("\n5. tasks without a table, training (env steps/s, medians of 10 updates): the torch twin against "
          "copies of the Gymnasium env")
    print(f"{'task':<22}{'agent (settings)':<32}{'stepped by':<12}{'collect':>10}{'update':>10}{'total':>10}")
    for env_id, ppo, network in (("CartPole-v1", "ppo", {}), ("MinAtar/Breakout-v1", "ppo_minatar",
                                                             {"network": "minatar_cnn"})):
        for name, preset, settings in (("society (default)", None, network),
                                       ("monolithic (same settings)", None, {"agent": "monolithic", **network}),
                                       (f"monolithic ({ppo})", ppo, {})):
            for copies in (False, True):
                r = control(env_id, preset, copies, **settings)
                print(f"{env_id:<22}{name:<32}{'copies' if copies else 'twin':<12}{r['collect']:>10.0f}"
                      f"{r['update']:>10.0f}{r['total']:>10.0f}")


if __name__ == "__main__":
    main()
