"""The training loop: collect 4,096 auction steps, compute utilities, one PPO update; repeat.

Evaluates (and checkpoints) every ``eval_every`` updates and at the end.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from societal.config import Config, from_preset
from societal.environments.mdp import bid_range_warnings, value_iteration
from societal.environments.tabular import action_names, finite_mdp
from societal.environments.vector import VecEnv, make, make_vec, obs_shape
from societal.errors import SocietalError, SocietalWarning
from societal.learning.ppo import PPO
from societal.learning.rollout import Collector
from societal.monolithic import Monolithic, MonolithicCollector
from societal.plots import plot_bids, plot_returns
from societal.primitives import LiteralActions, Options
from societal.qualitative import episode_strip, mental_rotation_report
from societal.run import Run, RunWriter, check_new, load
from societal.society import Society


def make_primitives(config: Config, num_actions: int, device: torch.device, options: dict | None = None,
                    trainable: bool = False) -> LiteralActions | Options:
    """The environment's actions, or the options of ``config.options`` (with fine-tuned weights ``options``).

    ``trainable`` options record their inner steps for PPO: only the trainer's collection asks for that.
    """
    if not config.options:
        return LiteralActions(num_actions)
    missing = [p for p in config.options if not (Path(p) / "config.json").is_file()]
    if missing:
        raise SocietalError(f"options must be run folders of monolithic runs; not a run folder: {', '.join(missing)}")
    primitives = Options.from_runs(list(config.options), config.gamma, config.option_done_action, device,
                                   trainable)
    if options is not None:
        primitives.net.load_state_dict(options)
    return primitives


def primitive_names(config: Config, env: gym.Env, num_primitives: int) -> tuple[str, ...]:
    """What each primitive is called in plots: its action's name, or its option's run folder."""
    if config.options:
        return tuple(str(Path(*Path(p).parts[-2:])) for p in config.options)
    return action_names(env) or tuple(f"action {k}" for k in range(num_primitives))


def make_eval_env(config: Config, episodes: int, device: torch.device) -> VecEnv:
    return make_vec(config.env, {**config.env_kwargs, **config.eval_env_kwargs}, episodes, device)


def make_ppo(agent: Society | Monolithic, c: Config) -> PPO:
    return PPO(agent, policy_lr=c.policy_lr, value_lr=c.value_lr, clip=c.clip, entropy=c.entropy,
               value_l2=c.value_l2, max_grad_norm=c.max_grad_norm, minibatch=c.minibatch, epochs=c.epochs,
               compile=c.compile)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SocietalError("device 'cuda' requested but no CUDA GPU is available; use --device cpu or auto")
    if name == "cuda":
        torch.backends.cudnn.benchmark = True  # batch shapes are fixed for a whole run: tune each convolution once
    return torch.device(name)


@dataclass
class Evaluation:
    returns: Tensor  # [episodes] undiscounted
    terminated: Tensor  # [episodes] bool: reached a terminal state (TwoRooms: succeeded), not cut by time
    wins: Tensor  # [S, P] auctions won per primitive in each one-hot state (S = 1 for other observations)

    @property
    def mean(self) -> float:
        return self.returns.mean().item()

    @property
    def std(self) -> float:
        return self.returns.std(unbiased=False).item()


@torch.no_grad()
def evaluate(agent: Society | Monolithic, config: Config, episodes: int, seed: int,
             primitives: LiteralActions | Options | None = None, env: VecEnv | None = None) -> Evaluation:
    """One episode in each of ``episodes`` environments; every bidder takes part, bids are sampled (each
    bidder bids its mean where ``config.eval_greedy``).

    An episode still running after ``config.eval_max_auctions`` auctions counts with its return so far.
    ``env`` (``episodes`` copies of the evaluation task) may be reused: it is reset with ``seed``.
    """
    device = next(agent.parameters()).device
    env = env or make_eval_env(config, episodes, device)
    primitives = primitives or make_primitives(config, agent.num_primitives, device)  # options: read once
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        obs = env.reset(seed=seed)
        total = torch.zeros(episodes, device=device)
        returns = torch.full((episodes,), math.nan, device=device)
        running = torch.ones(episodes, dtype=torch.bool, device=device)
        terminated = torch.zeros(episodes, dtype=torch.bool, device=device)
        wins = torch.zeros(obs.shape[1] if env.discrete else 1, agent.num_primitives, device=device)
        for _ in range(config.eval_max_auctions):
            chosen = agent.act(obs, greedy=config.eval_greedy)
            state = obs if env.discrete else torch.ones(episodes, 1, device=device)
            wins += (state * running[:, None]).t() @ torch.nn.functional.one_hot(chosen, agent.num_primitives).float()
            tr = primitives.apply(env, obs, chosen, running)  # finished episodes wait
            total += tr.env_return * running
            done = (tr.terminated | tr.truncated) & running
            returns = torch.where(done, total, returns)
            terminated |= done & tr.terminated
            running &= ~done
            if not running.any():
                break
            obs = tr.obs
    return Evaluation(torch.where(running, total, returns).cpu(), terminated.cpu(), wins.cpu())


def default_out(config: Config) -> Path:
    name = config.env.replace("/", "-")
    kind = config.mechanism if config.agent == "society" else config.agent
    return Path("runs") / f"{name}_{kind}_seed{config.seed}_{datetime.now():%Y%m%d-%H%M%S}"


def train(
    env: str = "societal/Chain-v0",
    *,
    preset: str | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    callback: Callable[[dict], bool | None] | None = None,
    **overrides,
) -> Run:
    """Train a society (or a monolithic baseline) on ``env``; ``overrides`` are ``Config`` fields, on top of
    the ``preset``'s settings (``societal.config.PRESETS``; default: ``paper`` on the paper's tasks,
    ``general`` on any other).

    ``callback(row)`` is called with every metrics row; returning ``False`` stops training.
    """
    names = [f.name for f in dataclasses.fields(Config) if f.name not in ("env", "preset")]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise SocietalError(f"unknown setting {', '.join(unknown)}; allowed: {', '.join(names)}")
    config = from_preset(preset, env, **overrides).validate()
    device = resolve_device(config.device)
    probe = make(config.env, **config.env_kwargs)
    out = Path(out) if out is not None else default_out(config)
    check_new(out)

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    primitives = make_primitives(config, int(probe.action_space.n), device, trainable=config.train_options)
    num_primitives = primitives.num_primitives
    vec = make_vec(config.env, config.env_kwargs, config.num_envs, device)
    shape = obs_shape(probe.observation_space)
    if config.agent == "society":
        agent = Society(shape, num_primitives, config.redundancy, config.clone, config.hidden, config.network)
        agent.init_bids(config.bid_init_mean, config.bid_init_precision)
        collector = Collector(agent.to(device), primitives, vec, config.mechanism, config.gamma, config.dropout,
                              config.reward_scale, config.reward_shift, config.seed, config.price, config.explore,
                              config.bonus)
    else:
        agent = Monolithic(shape, num_primitives, config.hidden, config.network)
        collector = MonolithicCollector(agent.to(device), primitives, vec, config.gamma, config.gae_lambda,
                                        config.reward_scale, config.reward_shift, seed=config.seed)
    tuned = False
    if config.init_from:
        parent = load(config.init_from)
        if type(parent.agent) is not type(agent) or parent.agent.spec != agent.spec:
            raise SocietalError(f"cannot transfer from {config.init_from}: its agent ({parent.agent.spec}) differs "
                                f"from this one ({agent.spec})")
        agent.load_state_dict(parent.agent.state_dict())
        if parent.options is not None and isinstance(primitives, Options):  # the options it was trained with
            primitives.net.load_state_dict(parent.options)
            tuned = True
    mdp = finite_mdp(probe)
    q_star = None
    if mdp is not None:
        mdp = mdp.scaled(config.reward_scale, config.reward_shift)
        q_star = value_iteration(mdp, config.gamma)
        for line in bid_range_warnings(mdp, q_star) if config.agent == "society" else []:
            warnings.warn(line, SocietalWarning, stacklevel=2)
    learner = make_ppo(agent, config)
    option_learner = make_ppo(primitives.net, primitives.config) if config.train_options else None
    tuned = tuned or config.train_options  # options that differ from their run folders are saved with the agent
    steps_per_rollout = math.ceil(config.auction_steps_per_update / config.num_envs)
    bids = config.agent == "society" and isinstance(probe.observation_space, gym.spaces.Discrete)  # per state
    visits = torch.zeros(shape[0] if bids else 0, device=device)
    names = primitive_names(config, probe, num_primitives)

    eval_env = make_eval_env(config, config.eval_episodes, device)  # built once (MNIST, MiniGrid tables)
    eval_primitives = primitives.frozen() if config.train_options else primitives  # its steps are not training data
    writer = RunWriter(out, config)
    run = Run(out, config, agent)
    best, last_eval = -math.inf, -1
    start = time.perf_counter()
    bar = tqdm(total=config.steps, unit="step", unit_scale=True, disable=None if progress else True)

    def checkpoint(update: int, env_steps: int) -> dict:
        nonlocal best, last_eval
        last_eval = update
        result = evaluate(agent, config, config.eval_episodes, 10**6 + config.seed * 1000 + update, eval_primitives,
                          eval_env)
        payload = {"format": 1, "config": config.to_dict(), "agent_spec": agent.spec,
                   "agent": agent.state_dict(), "update": update, "env_steps": env_steps,
                   "eval_return": result.mean, "ppo": learner.state_dict()}
        if tuned:
            payload["options"] = primitives.net.state_dict()
        writer.checkpoint("last", payload)
        if result.mean >= best:
            best = result.mean
            writer.checkpoint("best", payload)
        if bids:
            writer.bids(bid_rows(agent, update, env_steps, visits, q_star, result.wins, names))
        return {"eval_return_mean": result.mean, "eval_return_std": result.std,
                "eval_success_rate": result.terminated.float().mean().item()}

    update, env_steps, auction_steps = 0, 0, 0
    writer.metrics({"update": 0, "env_steps": 0, "auction_steps": 0, "wall_s": 0.0, **checkpoint(0, 0)})
    try:
        def finished() -> bool:
            return (env_steps >= config.steps or 0 < config.max_auction_steps <= auction_steps
                    or 0 < config.max_wall_s <= time.perf_counter() - start)

        while not finished():
            t0 = time.perf_counter()
            if config.agent == "society":
                rollout = collector.collect(steps_per_rollout)
                samples, returns, steps = rollout.samples(agent), rollout.episode_returns, rollout.env_steps
                continuation = rollout.resale
                not_last = ~rollout.last
                market = {"winner_utility": rollout.utility.sum(2).mean().item(),
                          "conservation_residual": rollout.residual[not_last].mean().item() if not_last.any() else 0.0}
            else:
                (samples, returns, steps, continuation), market = collector.collect(steps_per_rollout), {}
            t1 = time.perf_counter()
            lr_scale = config.lr_decay ** (max(0, update - config.lr_decay_after) // config.lr_decay_every)
            entropy_coef = config.entropy_at(env_steps)
            stats = learner.update(samples, lr_scale, entropy_coef)
            if option_learner is not None:
                c = primitives.config
                option_samples = primitives.samples(c.gae_lambda, continuation)
                stats |= {f"option_{k}": v for k, v in option_learner.update(option_samples).items()}
            t2 = time.perf_counter()
            update += 1
            env_steps += steps
            auction_steps += steps_per_rollout * config.num_envs
            if bids:
                visits += samples.obs.sum(0)
            row = {
                "update": update, "env_steps": env_steps, "auction_steps": auction_steps,
                "wall_s": time.perf_counter() - start, "collect_s": t1 - t0, "update_s": t2 - t1,
                "env_steps_per_s": steps / (t2 - t0), "episodes": len(returns), **return_stats(returns),
                **market, "policy_lr": config.policy_lr * lr_scale, "entropy_coef": entropy_coef, **stats,
            }
            if update % config.eval_every == 0 or finished():
                row.update(checkpoint(update, env_steps))
            writer.metrics(row)
            bar.update(steps)
            bar.set_postfix(ret=f"{row['return_mean']:.3f}", sps=f"{row['env_steps_per_s']:.0f}")
            if callback is not None and callback(row) is False:
                break
        if last_eval != update:  # stopped by the callback between evaluations
            writer.metrics({"update": update, "env_steps": env_steps, "auction_steps": auction_steps,
                            "wall_s": time.perf_counter() - start, **checkpoint(update, env_steps)})
    finally:
        bar.close()
        writer.close()
    run.options = primitives.net.state_dict() if tuned else None
    plot_returns(run.metrics, out / "plots" / "returns.png", config.env)
    if bids:
        plot_bids(run.bids, out / "plots" / "bids.png", config.env)
    if config.env == "societal/MentalRotation-v0":
        mental_rotation_report(run, out / "qualitative")
    elif len(shape) == 3:  # image observations: show an evaluation episode
        episode_strip(run, out / "qualitative" / "episode.png")
    run.update, run.env_steps = update, env_steps
    return run


def return_stats(returns: Tensor) -> dict:
    if len(returns) == 0:
        return {"return_mean": math.nan}
    return {"return_mean": returns.mean().item(), "return_std": returns.std(unbiased=False).item(),
            "return_min": returns.min().item(), "return_max": returns.max().item()}


@torch.no_grad()
def bid_rows(society: Society, update: int, env_steps: int, visits: Tensor, q_star, wins: Tensor,
             names: tuple[str, ...]) -> list[dict]:
    """Mean and std of every learner's Beta bid in every state (one-hot observations), with the training
    auctions held there so far (``visits``: 0 means its bids were never trained) and evaluation win rates."""
    alpha, beta = society.distribution(torch.eye(len(visits), device=visits.device))
    total = alpha + beta
    mean, std = alpha / total, (alpha * beta / (total**2 * (total + 1))).sqrt()
    win_rate = wins / wins.sum(1, keepdim=True).clamp(min=1)
    rows = []
    for s, count in enumerate(visits.tolist()):
        for k in range(society.num_learners):
            p = k % society.num_primitives
            rows.append({"update": update, "env_steps": env_steps, "state": s, "visits": int(count), "learner": k,
                         "primitive": p, "action": names[p], "mean_bid": mean[k, s].item(), "std_bid": std[k, s].item(),
                         "q_star": "" if q_star is None else float(q_star[s, p]), "win_rate": win_rate[s, p].item()})
    return rows
