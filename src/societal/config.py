"""The configuration of a run: the paper's values as defaults (its §3.3 hyperparameters), and named presets.

The CLI, the experiment presets and ``config.json`` are views of this dataclass.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import os
import textwrap
import typing
from dataclasses import dataclass, field

from societal.errors import SocietalError

PRICES = ("sampled", "mean")
AGENTS = ("society", "monolithic", "factorized")
DEVICES = ("cpu", "cuda", "auto")
# The names of societal.mechanisms.MECHANISMS and societal.networks.NETWORKS (a test keeps them equal), here so
# that the CLI's help and the checks of a config need no torch.
MECHANISMS = ("v", "ccv", "bb", "env")
NETWORKS = ("mlp", "table", "minigrid_cnn", "minatar_cnn", "mnist_cnn")


@dataclass
class Config:
    """Every setting of a run; the paper's values are the defaults, and ``PRESETS`` name other sets of values.

    ``help(Config)`` lists every field below with its meaning and allowed values (from the field notes in the
    source). ``validate()`` checks them all and raises ``SocietalError`` with one line naming the field.
    """

    env: str = "societal/Chain-v0"
    """Gymnasium id of the task (``societal/…`` or any env with a Discrete action space)."""
    preset: str = "paper"
    """The named settings the run started from (``PRESETS``); settings given explicitly override them."""
    env_kwargs: dict = field(default_factory=dict)
    """Keyword arguments for the environment's constructor."""
    eval_env_kwargs: dict = field(default_factory=dict)
    """Evaluation overrides of ``env_kwargs`` (e.g. ``{"split": "test"}`` for MentalRotation)."""
    imports: tuple[str, ...] = ()
    """Python modules that register the environment with Gymnasium (a user's own tasks), imported before it is
    made. A run records them (and the module that registered its environment), and later imports them again
    from installed code only, never from the current folder or the run folder (``societal.imports``)."""
    agent: str = "society"
    """``society`` (bidding primitives), ``monolithic`` (one categorical policy over the primitives) or
    ``factorized`` (the same with one MLP per primitive giving its logit: the follow-up's factorized PPO)."""
    options: tuple[str, ...] = ()
    """Run folders of monolithic runs whose policies become the primitives (frozen options);
    empty: the environment's actions are the primitives."""
    option_done_action: int = 6
    """The action that ends an option (MiniGrid's ``done``); it is taken before the option ends."""
    train_options: bool = False
    """Fine-tune the options with PPO, with their own pre-training settings, for the agent that chooses them."""
    mechanism: str = "ccv"
    """Auction mechanism: ``v``, ``ccv``, ``bb`` or ``env`` (see ``societal.mechanisms``)."""
    redundancy: int = 2
    """Bidders per primitive (r)."""
    clone: bool = True
    """Redundant bidders share weights (the cloned Vickrey society) or have their own."""
    dropout: bool = False
    """Agent dropout: each training episode a random subset of bidders sits out (at least 2 stay)."""
    steps: int = 2_000_000
    """Training budget in environment steps."""
    max_auction_steps: int = 0
    """Also stop after this many auction steps (top-level choices; options last several env steps). 0: no limit."""
    max_wall_s: float = 0.0
    """Also stop after this many seconds of training (then evaluate and write the outputs as usual). 0: no limit."""
    init_from: str = ""
    """Run folder whose best checkpoint initialises the agent (transfer); optimisers start afresh."""
    seed: int = 0
    """Seed of every random stream of the run (networks, environments, auctions, evaluation)."""
    num_envs: int = 256
    """Environments collected in parallel."""
    device: str = "cpu"
    """``cpu``, ``cuda`` or ``auto``."""
    threads: int = 1
    """Torch CPU threads (small networks run fastest on one; two runs then share a 2-core machine)."""
    compile: bool | None = None
    """Compile the PPO step and (a society on a table task) the auction step with Inductor, in the background
    while training goes on (see ``learning/compiling.py``); ``None``: for CPU runs of MLP agents with a budget of
    at least 2 M env steps, where it pays."""
    reward_scale: float = 1.0
    """Multiplies every reward in the utilities (see ``reward_shift``)."""
    reward_shift: float = 0.0
    """Utilities use ``reward_scale·r + reward_shift``, to map other reward ranges into the bid range; a shift is
    paid at every step, so it changes which policy is best wherever an episode can end (see ``absorbing_shift``)."""
    absorbing_shift: bool = False
    """The shift is also paid after an episode ends, forever: the last reward gets its discounted sum
    γ·shift/(1 − γ) (at a time-limit cut too, unless ``bootstrap_truncated`` resells the state instead). Every
    value then moves by the same shift/(1 − γ), so no policy gains by lasting longer or ending sooner, and a
    negative value can be shifted into the bids' range."""
    auto_scale: bool = False
    """Map the rewards so that a society's bids can express the task's values: on a finite task its exact Q*
    (within the time limit where it is part of the task), on any other a probe of random actions before
    training bounds the discounted returns; where they leave [0, 1], ``reward_scale`` and ``reward_shift`` are
    divided by their width, and with ``absorbing_shift`` the lowest is lifted to 0 (the run's ``config.json``
    records the values used). Off, a warning names the settings to use (``learning/scaling.py``)."""
    # PPO, memoryless bidders
    gamma: float = 0.99
    """Discount factor γ of the utilities and of the exact assessment."""
    gae_lambda: float = 0.95
    """GAE λ of the monolithic agent (bidders are memoryless and need none)."""
    clip: float = 0.2
    """PPO's clipping range ε of the probability ratio."""
    epochs: int = 1
    """PPO epochs over each rollout."""
    minibatch: int = 256
    """PPO minibatch size, in auction steps."""
    auction_steps_per_update: int = 4096
    """Auction steps collected (over all environments) per PPO update."""
    policy_lr: float = 4e-5
    """Adam learning rate of the bid (or action) policies."""
    value_lr: float = 5e-3
    """Adam learning rate of the value functions."""
    entropy: float = 0.1
    """Entropy bonus coefficient of the policies' loss."""
    entropy_final: float = 0.0
    """Where the entropy coefficient decays to (see ``entropy_halflife``)."""
    entropy_halflife: int = 0
    """The entropy coefficient after t env steps is final + (entropy − final) · 2^(−t / halflife); 0: constant."""
    value_l2: float = 1e-3
    """L2 penalty coefficient on the value functions' weights."""
    max_grad_norm: float = 40.0
    """Gradients are clipped to this norm, per primitive."""
    lr_decay_after: int = 500
    """Both learning rates are multiplied by ``lr_decay`` every ``lr_decay_every`` updates after this one."""
    lr_decay_every: int = 100
    """See ``lr_decay_after``."""
    lr_decay: float = 0.99
    """See ``lr_decay_after``."""
    lr_anneal: bool = False
    """Both learning rates fall linearly from their value to 0 over ``steps`` env steps (CleanRL's ``anneal_lr``),
    in place of ``lr_decay``."""
    hidden: tuple[int, ...] = (16,)
    """Hidden layer sizes of the bidders and value functions (``network="mlp"``)."""
    bidder_relu: bool = False
    """A ReLU after the bidders' last hidden layer, as the monolithic policy has. Without it (the paper's bidders)
    ``hidden=(16,)`` makes a bid's mean a sigmoid of a *linear* function of the observation: a table on one-hot
    states, but on CartPole its prices err by more than the actions' value gaps (``docs/beyond_tables.md``)."""
    network: str = "mlp"
    """Bidder and policy architecture: ``mlp`` (the paper's, tabular), ``table`` (one-hot observations: every
    state's bids and values its own parameters, so that learning in one state moves no other's), ``minigrid_cnn``,
    ``minatar_cnn`` or ``mnist_cnn``."""
    # the market beyond the paper (the ``general`` preset)
    price: str = "sampled"
    """What the mechanism prices with: the ``sampled`` bids (the paper) or each bidder's ``mean`` bid."""
    bid_init_mean: float = 0.5
    """See ``bid_init_precision``."""
    bid_init_precision: float = 2.0
    """Every bidder starts at Beta(mean · precision, (1 − mean) · precision); the paper's is Beta(1, 1)."""
    explore: float = 0.0
    """Probability that a training auction is exploratory: only the bidders of one random primitive take
    part, and the seller of the state is paid the full auction's price."""
    bonus: float = 0.0
    """Count bonus (one-hot observations): the winner at s is also paid bonus / √(auctions its primitive won at s)."""
    bootstrap_truncated: bool = False
    """Whether the time limit is a training convenience rather than part of the task (Pardo et al., ICML 2018,
    "Time Limits in Reinforcement Learning"). False: a cut ends the episode as any end does (the paper's rule),
    and prices converge to the values within the limit; right where the limit belongs to the task (the tables'
    horizons, FrozenLake's step limit). True: a cut sells its last state at the price of an auction there, as a
    rollout cut does, and prices converge to Q* of the task without a limit; right where the limit only keeps
    episodes short (CartPole's 500 steps). ``assess`` judges a run on the task its setting describes."""
    # evaluation and outputs
    eval_every: int = 0
    """Updates between evaluations; 0: every 50 updates, or often enough that the run has at least 10 evaluations
    (``evaluation_period``)."""
    eval_episodes: int = 100
    """Episodes of every evaluation."""
    eval_max_auctions: int = 1000
    """An evaluation episode still running after this many auctions counts with its return so far."""
    checkpoint_every: int = 50
    """See ``checkpoint_s``."""
    checkpoint_s: float = 120.0
    """A checkpoint to resume from is written every ``checkpoint_every`` updates (with the evaluations), and
    whenever ``checkpoint_s`` seconds have passed since the last one."""
    eval_greedy: bool = False
    """Evaluation bids the mean of every bidder's distribution (a monolithic policy: its most probable
    choice) instead of sampling, as Stable-Baselines3 evaluates deterministically."""

    def __post_init__(self) -> None:
        """Python callers and ``config.json`` give lists and paths: ``options=[Path("runs/red"), …]``."""
        def plain(v: object) -> object:
            return os.fspath(v) if isinstance(v, os.PathLike) else v

        for f, kind in typing.get_type_hints(Config).items():
            value = getattr(self, f)
            if typing.get_origin(kind) is tuple and isinstance(value, list | tuple):
                setattr(self, f, tuple(map(plain, value)))
            elif kind is str:
                setattr(self, f, plain(value))

    def validate(self) -> Config:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise SocietalError(msg)

        for f, kind in typing.get_type_hints(Config).items():  # --set and config.json values are untyped
            value = getattr(self, f)
            if kind in (int, float, str, bool):
                allowed = (int, float) if kind is float else kind  # 1 is a fine float; True is no number
                need(isinstance(value, allowed) and (kind is bool or not isinstance(value, bool)),
                     f"{f} must be {'an' if kind is int else 'a'} {kind.__name__}, got {value!r}")
            elif kind == bool | None:
                need(value is None or isinstance(value, bool), f"{f} must be True, False or None, got {value!r}")
            elif typing.get_origin(kind) is tuple:
                item = typing.get_args(kind)[0]
                need(isinstance(value, tuple) and all(isinstance(v, item) and not isinstance(v, bool) for v in value),
                     f"{f} must be a tuple of {item.__name__}s, got {value!r}")
        for f, choices in {"preset": PRESETS, "agent": AGENTS, "mechanism": MECHANISMS, "price": PRICES,
                           "device": DEVICES, "network": NETWORKS}.items():
            need(getattr(self, f) in choices, f"unknown {f} {getattr(self, f)!r}; allowed: {', '.join(choices)}")
        for f in (f for f, kind in typing.get_type_hints(Config).items() if kind is float):
            need(math.isfinite(getattr(self, f)), f"{f} must be a finite number, got {getattr(self, f)!r}")
        for f, (ok, allowed) in RANGES.items():
            need(ok(getattr(self, f)), f"{f} must be {allowed}, got {getattr(self, f)!r}")
        for f in ("env_kwargs", "eval_env_kwargs"):
            value = getattr(self, f)
            need(isinstance(value, dict) and all(isinstance(k, str) and k.isidentifier() for k in value),
                 f"{f} must be a dict of keyword arguments, e.g. {{'length': 10}}, got {value!r}")
        need(self.options or not self.train_options,
             "train_options needs options (run folders whose policies become the primitives)")
        need(self.agent != "factorized" or self.network == "mlp",
             f"a factorized policy is one MLP per primitive: network must be mlp, got {self.network!r}")
        need(not self.absorbing_shift or self.gamma < 1, "absorbing_shift needs gamma < 1 (the shift's sum forever)")
        need(self.auction_steps_per_update >= self.num_envs,
             f"auction_steps_per_update ({self.auction_steps_per_update}) must be at least num_envs ({self.num_envs})")
        return self

    def evaluation_period(self) -> int:
        """Updates between evaluations: ``eval_every``, or where that is 0, 50 updates or a tenth of the updates
        the budget allows (each auction one env step), whichever is fewer, so that even a short run has at least
        10 evaluations to choose its best checkpoint from."""
        if self.eval_every:
            return self.eval_every
        updates = math.ceil(self.steps / self.auction_steps_per_update)
        return max(1, min(50, updates // 10))

    def entropy_at(self, env_steps: int) -> float:
        """The entropy coefficient after ``env_steps`` env steps."""
        if not self.entropy_halflife:
            return self.entropy
        return self.entropy_final + (self.entropy - self.entropy_final) * 2 ** (-env_steps / self.entropy_halflife)

    def absorbed(self) -> float:
        """The value of an ended episode: the shift paid forever after it (``absorbing_shift``), else 0."""
        return self.reward_shift / (1 - self.gamma) if self.absorbing_shift else 0.0

    def reward_end(self) -> float:
        """What the reward of a step that ends an episode gets on top of ``reward_scale·r + reward_shift``."""
        return self.gamma * self.absorbed()

    def lr_scale_at(self, update: int, env_steps: int) -> float:
        """What both learning rates are multiplied by in update ``update + 1``, after ``env_steps`` env steps."""
        if self.lr_anneal:
            return max(0.0, 1.0 - env_steps / self.steps)
        return self.lr_decay ** (max(0, update - self.lr_decay_after) // self.lr_decay_every)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise SocietalError(f"unknown config keys {sorted(unknown)}; allowed: {sorted(names)}")
        return cls(**d)


def _at_least(low: int) -> tuple:
    return (lambda v: v >= low), "0 or positive" if low == 0 else f"at least {low}"


RANGES: dict[str, tuple] = {  # field → (test, what is allowed)
    **dict.fromkeys(("redundancy", "num_envs", "threads", "epochs", "minibatch", "lr_decay_every",
                     "eval_episodes", "eval_max_auctions", "checkpoint_every"), _at_least(1)),
    **dict.fromkeys(("eval_every", "max_auction_steps", "max_wall_s", "lr_decay_after", "entropy_halflife",
                     "option_done_action"), _at_least(0)),
    **dict.fromkeys(("steps", "clip", "max_grad_norm", "bid_init_precision", "checkpoint_s"),
                    ((lambda v: v > 0), "positive")),
    "seed": ((lambda v: 0 <= v < 2**32), "in [0, 2³²)"),
    "gamma": ((lambda v: 0 < v <= 1), "in (0, 1]"),
    "lr_decay": ((lambda v: 0 < v <= 1), "in (0, 1]"),
    "gae_lambda": ((lambda v: 0 <= v <= 1), "in [0, 1]"),
    "bid_init_mean": ((lambda v: 0 < v < 1), "in (0, 1)"),
    "explore": ((lambda v: 0 <= v < 1), "in [0, 1)"),
    "hidden": ((lambda v: len(v) >= 1 and min(v) >= 1), "one or more positive sizes"),
    **dict.fromkeys(("policy_lr", "value_lr"), ((lambda v: 0 <= v <= 1), "in [0, 1]")),
    **dict.fromkeys(("entropy", "entropy_final", "value_l2"), ((lambda v: 0 <= v <= 10), "in [0, 10]")),
    "bonus": ((lambda v: 0 <= v <= 100), "in [0, 100]"),
    **dict.fromkeys(("reward_scale", "reward_shift"), ((lambda v: abs(v) <= 1e6), "in [-10⁶, 10⁶]")),
    "imports": ((lambda v: all(p.isidentifier() for name in v for p in name.split("."))), "dotted module names"),
}

PRESETS: dict[str, dict] = {
    "paper": {},  # the paper's settings: the defaults above
    "general": {"price": "mean", "bid_init_mean": 0.9, "bid_init_precision": 10.0, "explore": 0.05, "entropy": 0.01,
                "policy_lr": 4e-3, "eval_greedy": True, "auto_scale": True, "absorbing_shift": True,
                "network": "table"},
}
# the paper's bidders (two linear layers) move a state's bid faster than a table at the same rate: 4e-4 there
PRESETS["general_mlp"] = {**PRESETS["general"], "network": "mlp", "policy_lr": 4e-4}
PRESETS["control"] = {**PRESETS["general_mlp"], "hidden": (32, 32), "minibatch": 1024, "epochs": 8,
                       "entropy_halflife": 200_000, "bootstrap_truncated": True}
"""Named settings. ``general`` (beyond the paper, for tasks whose observations are their states) makes prices
converge to Q* on long horizons, lets the market explore, keeps every state's bids its own (``network="table"``:
an unvisited state stays optimistic) and maps rewards of any sign and scale into the bids' range (unchanged where
they fit); see the README's "The market beyond the paper". ``general_mlp`` is the same market with the paper's
MLP bidders, for observations that are not states (images, codes). ``control`` (tasks of feature vectors without
a table, such as CartPole) treats the time limit as a training convenience and adds bidders with a hidden ReLU
layer (``hidden=(16,)`` is linear) that can price the actions, eight epochs of minibatches of 1,024 and an
entropy bonus that halves every 200 k env steps; see ``docs/beyond_tables.md``. ``ppo`` is the monolithic
baseline as its users run it, not at the paper's settings: CleanRL's ppo.py defaults for classic control."""
PRESETS["ppo"] = {"agent": "monolithic", "num_envs": 4, "auction_steps_per_update": 512, "epochs": 4,
                  "minibatch": 128, "policy_lr": 2.5e-4, "value_lr": 2.5e-4, "lr_anneal": True, "entropy": 0.01,
                  "max_grad_norm": 0.5, "value_l2": 0.0, "hidden": (64, 64)}
# MinAtar: the control market with Young & Tian's network; PPO as Pgx's MinAtar example runs it (lr 3e-4, 3 epochs,
# minibatches of 4,096, 128 steps per env, entropy 0.01, gradients clipped at 0.5), on 128 envs instead of 4,096
# (one epoch: the CNN bidders' update is already 8× the monolithic agent's; more were measured only on control)
PRESETS["minatar"] = {**PRESETS["control"], "network": "minatar_cnn", "epochs": 1}
PRESETS["ppo_minatar"] = {"agent": "monolithic", "network": "minatar_cnn", "num_envs": 128,
                          "auction_steps_per_update": 16384, "epochs": 3, "minibatch": 4096, "policy_lr": 3e-4,
                          "value_lr": 3e-4, "entropy": 0.01, "max_grad_norm": 0.5, "value_l2": 0.0,
                          "lr_decay": 1.0}
DEFAULT_PRESETS = {"minatar.gym:BaseEnv": "minatar"}
"""A task's env class (``module:Class``, subclasses included) → the preset it gets by default."""


PAPER_TASKS = ("societal/Bandit-v0", "societal/Chain-v0", "societal/Duality-v0", "societal/MentalRotation-v0",
               *(f"societal/{name}TwoRooms-v0" for name in ("RedGoal", "GreenGoal", "BlueGoal", "Green", "Blue")))


def default_preset(env: str, env_kwargs: dict | None = None) -> str:
    """``paper`` on the paper's tasks, the preset ``DEFAULT_PRESETS`` names for the task's class, ``general`` where
    the observations are the task's states, ``control`` on tasks of feature vectors without a table,
    ``general_mlp`` on any other."""
    if env in PAPER_TASKS:
        return "paper"
    import gymnasium as gym  # here, not above: a Config (and the command line's help) needs no environment

    from societal.environments.tabular import finite_mdp
    from societal.environments.vector import make

    probe = make(env, **(env_kwargs or {}))
    for cls in type(probe.unwrapped).__mro__:
        if (preset := DEFAULT_PRESETS.get(f"{cls.__module__}:{cls.__qualname__}")) is not None:
            return preset
    space = probe.observation_space
    if isinstance(space, gym.spaces.Discrete):
        return "general"
    features = isinstance(space, gym.spaces.Box) and len(space.shape) == 1
    return "control" if features and finite_mdp(probe) is None else "general_mlp"


def from_preset(preset: str | None, env: str, **settings) -> Config:
    """A ``Config`` for ``env`` of ``preset``'s settings (None: ``default_preset(env)``), with ``settings`` on top."""
    preset = default_preset(env, settings.get("env_kwargs")) if preset is None else preset
    if preset not in PRESETS:
        raise SocietalError(f"unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")
    return Config(**{**PRESETS[preset], **settings, "env": env, "preset": preset})


def field_docs(cls: type) -> dict[str, str]:
    """Each field's note: the string that follows it in the class body (where the source can be read)."""
    try:
        body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    except (OSError, TypeError):
        return {}
    docs = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def describe_fields() -> str:
    """Every field of ``Config``: its type, its default (the paper's), what ``general`` sets, what is allowed, and
    its note."""
    docs, lines = field_docs(Config), ["Fields:", ""]
    choices = {"preset": PRESETS, "agent": AGENTS, "mechanism": MECHANISMS, "price": PRICES, "device": DEVICES,
               "network": NETWORKS}
    for f in dataclasses.fields(Config):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        extra = [f"{name}: {values[f.name]!r}" for name, values in PRESETS.items() if f.name in values]
        if f.name in RANGES:
            extra.append(RANGES[f.name][1])
        if f.name in choices:
            extra.append("one of " + ", ".join(choices[f.name]))
        lines.append(f"{f.name}: {f.type} = {default!r}" + (f" ({'; '.join(extra)})" if extra else ""))
        lines.extend(textwrap.wrap(docs.get(f.name, ""), 100, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines)


Config.__doc__ = f"{Config.__doc__}\n{textwrap.indent(describe_fields(), '    ')}\n"
