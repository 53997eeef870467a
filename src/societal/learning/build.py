"""The parts of a run, built from its config: environments, primitives, agent, collector and learners."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from societal.config import Config
from societal.environments.mdp import bid_range_warnings, task_q
from societal.environments.tabular import action_names, finite_mdp
from societal.environments.vector import VecEnv, make, make_vec, obs_shape
from societal.errors import SocietalError, SocietalWarning
from societal.evaluation import make_eval_env
from societal.exact import market_task
from societal.learning.bids import BidLog
from societal.learning.choices import MonolithicCollector
from societal.learning.ppo import PPO
from societal.learning.rollout import Collector
from societal.monolithic import Monolithic
from societal.primitives import LiteralActions, Options, make_primitives
from societal.society import Society
from societal.storage import checkpoint_file, load_weights, read_checkpoint, read_config


@dataclass
class Parts:
    config: Config
    device: torch.device
    primitives: LiteralActions | Options
    agent: Society | Monolithic
    collector: Collector | MonolithicCollector
    learner: PPO
    option_learner: PPO | None  # train_options
    tuned: bool  # the options differ from their run folders: they are saved with the agent
    eval_env: VecEnv
    eval_primitives: LiteralActions | Options
    steps_per_rollout: int
    names: tuple[str, ...]  # of the primitives
    bids: BidLog | None  # a society on one-hot observations

    def learner_name(self, k: int) -> str:
        if isinstance(self.agent, Monolithic):
            return "the policy"
        return f"learner {k} ({self.names[k % self.agent.num_primitives]})"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SocietalError("device 'cuda' requested but no CUDA GPU is available; use device cpu or auto")
    if name == "cuda":
        torch.backends.cudnn.benchmark = True  # batch shapes are fixed for a whole run: tune each convolution once
    return torch.device(name)


AUTO_COMPILE_STEPS = 2_000_000  # compiling pays off within about 10 s of eager training


def compiling(c: Config, agent: Society | Monolithic, device: torch.device) -> bool:
    """Whether the run compiles its PPO step (and a society's auction step on a table)."""
    if c.compile is not None:
        return c.compile
    return agent.policy_net is not None and device.type == "cpu" and c.steps >= AUTO_COMPILE_STEPS


def make_ppo(agent: Society | Monolithic, c: Config, device: torch.device, codes: torch.Tensor | None = None) -> PPO:
    return PPO(agent, policy_lr=c.policy_lr, value_lr=c.value_lr, clip=c.clip, entropy=c.entropy,
               value_l2=c.value_l2, max_grad_norm=c.max_grad_norm, minibatch=c.minibatch, epochs=c.epochs,
               compile=compiling(c, agent, device), codes=codes)


def primitive_names(config: Config, env: gym.Env, num_primitives: int) -> tuple[str, ...]:
    """What each primitive is called in plots: its action's name, or its option's run folder."""
    if config.options:
        return tuple(str(Path(*Path(p).parts[-2:])) for p in config.options)
    return action_names(env) or tuple(f"action {k}" for k in range(num_primitives))


def build(config: Config, transfer: bool = True) -> Parts:
    """Every part of a run, seeded from ``config.seed``; ``transfer``: start from ``config.init_from``'s weights."""
    device = resolve_device(config.device)
    probe = make(config.env, **config.env_kwargs)
    check_evaluation_env(config, probe)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    primitives = make_primitives(config, int(probe.action_space.n), device, trainable=config.train_options)
    check_options(config, probe, primitives)
    if config.network == "table" and not isinstance(probe.observation_space, gym.spaces.Discrete):
        raise SocietalError(f"network=table needs a task whose observations are its states (a Discrete space); "
                            f"{config.env} observes {probe.observation_space}: use --network mlp")
    vec = make_vec(config.env, config.env_kwargs, config.num_envs, device)
    shape = obs_shape(probe.observation_space)
    c = config
    if c.agent == "society":
        agent = fitted(lambda: Society(shape, primitives.num_primitives, c.redundancy, c.clone, c.hidden, c.network,
                                       c.bidder_relu), vec, c.network)
        agent.init_bids(c.bid_init_mean, c.bid_init_precision)
        collector = Collector(agent, primitives, vec, c.mechanism, c.gamma, c.dropout, c.reward_scale,
                              c.reward_shift, c.seed, c.price, c.explore, c.bonus, c.bootstrap_truncated,
                              compiling(c, agent, device), c.reward_end())
    else:
        agent = fitted(lambda: Monolithic(shape, primitives.num_primitives, c.hidden, c.network,
                                          factorized=c.agent == "factorized"), vec, c.network)
        collector = MonolithicCollector(agent, primitives, vec, c.gamma, c.gae_lambda, c.reward_scale,
                                        c.reward_shift, seed=c.seed, reward_end=c.reward_end())
    carried = transfer and bool(c.init_from) and load_parent(c, agent, primitives)
    tuned = c.train_options or carried
    names = primitive_names(c, probe, primitives.num_primitives)
    bids = None
    if c.agent == "society" and isinstance(probe.observation_space, gym.spaces.Discrete):
        bids = BidLog(shape[0], names, q_star(c, probe), device)
    return Parts(
        config=c, device=device, primitives=primitives, agent=agent, collector=collector,
        learner=make_ppo(agent, c, device, vec.codes),
        option_learner=make_ppo(primitives.net, primitives.config, device) if c.train_options else None, tuned=tuned,
        eval_env=make_eval_env(c, c.eval_episodes, device),  # built once (MNIST, MiniGrid tables)
        eval_primitives=primitives.frozen() if c.train_options else primitives,  # its steps are not training data
        steps_per_rollout=math.ceil(c.auction_steps_per_update / c.num_envs), names=names, bids=bids,
    )


def check_evaluation_env(config: Config, probe: gym.Env) -> None:
    if not config.eval_env_kwargs:
        return
    other = make(config.env, **{**config.env_kwargs, **config.eval_env_kwargs})
    if other.observation_space != probe.observation_space or other.action_space != probe.action_space:
        raise SocietalError(f"eval_env_kwargs {config.eval_env_kwargs} change the task's spaces "
                            f"({other.observation_space}, {other.action_space} instead of {probe.observation_space}, "
                            f"{probe.action_space}); evaluation must be on the same spaces")


def check_options(config: Config, probe: gym.Env, primitives: LiteralActions | Options) -> None:
    """Options act on the task's own observations with its own actions: options trained on other spaces would
    fail in the first rollout, after the run folder is made, or act on actions that mean something else."""
    if not isinstance(primitives, Options):
        return
    theirs = (tuple(primitives.net.spec["obs_shape"]), primitives.net.num_primitives)
    task = (obs_shape(probe.observation_space), int(probe.action_space.n))
    if theirs != task:
        raise SocietalError(f"the options were trained on other spaces than {config.env}'s: "
                            f"{checkpoint_file(Path(config.options[0]), 'best')} on observations of shape {theirs[0]} "
                            f"with {theirs[1]} actions, {config.env} has {task[0]} with {task[1]}")


def fitted(make_agent, vec: VecEnv, network: str) -> Society | Monolithic:
    """The agent, after one forward pass on the task's observations: a network that does not fit them is one
    clear line."""
    obs = vec.reset(seed=0)[:1]
    try:
        agent = make_agent().to(obs.device)
        with torch.no_grad():
            agent.values(obs)
            agent.log_prob_entropy(obs, torch.zeros(agent.theta.shape[0], 1, device=obs.device))
    except (RuntimeError, IndexError, ValueError) as e:
        raise SocietalError(f"network {network!r} does not fit observations of shape {tuple(obs.shape[1:])}: "
                            f"{str(e).splitlines()[0]}") from None
    return agent


def load_parent(config: Config, agent: Society | Monolithic, primitives: LiteralActions | Options) -> bool:
    """Start from the best weights of ``config.init_from`` (transfer); True if it carried fine-tuned options."""
    parent_config = read_config(Path(config.init_from))
    parent = read_checkpoint(Path(config.init_from), "best", parent_config)
    file = checkpoint_file(Path(config.init_from), "best")
    spec = parent["agent_spec"] if isinstance(parent["agent_spec"], dict) else {}
    mine, theirs = {"agent": config.agent, **agent.spec}, {"agent": parent_config.agent, **spec}
    differ = [f"{k} ({theirs.get(k)}, not {mine.get(k)})" for k in sorted(mine.keys() | theirs.keys())
              if theirs.get(k) != mine.get(k)]
    if differ:
        raise SocietalError(f"cannot transfer from {file}: its agent differs from this one in {', '.join(differ)}")
    load_weights(agent, parent["agent"], file, "this run's agent")
    if parent.get("options") is not None and isinstance(primitives, Options):  # the options it was trained with
        load_weights(primitives.net, parent["options"], file, "this run's options")
        return True
    return False


def q_star(config: Config, probe: gym.Env) -> np.ndarray | None:
    """Q* of the rewards the market is paid (finite tasks only), with a warning for what bids cannot express."""
    mdp = finite_mdp(probe)
    if mdp is None:
        return None
    mdp = market_task(mdp, config)
    q = task_q(mdp, config.gamma)[0]
    for line in bid_range_warnings(mdp, q, rewards=not config.auto_scale):
        warnings.warn(line, SocietalWarning, stacklevel=4)
    return q
