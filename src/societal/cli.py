"""``societal`` command line: ``train``, ``eval`` and ``experiments``.

User mistakes print one line ``societal …: error: …`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from societal.arguments import build_parser
from societal.config import Config
from societal.errors import SocietalError, SocietalWarning, Stopped
from societal.experiments.paper import BEYOND, commands, conditions
from societal.imports import import_named

if TYPE_CHECKING:
    from societal.run import Run


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
    evaluations = run.metrics.dropna(subset=["eval_return_mean"])
    # none where a finished run is resumed after its metrics.csv was damaged (its rows are not made again)
    last = "no evaluation in its metrics.csv" if evaluations.empty else (
        f"evaluation return {evaluations.eval_return_mean.iloc[-1]:.4f} ± {evaluations.eval_return_std.iloc[-1]:.4f}")
    print(f"{run.path}: {run.env_steps:,} env steps, {last} (budget {run.config.steps:,} env steps, in whole updates)")
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


def checkpoint_used(run: Run) -> str:
    """Which checkpoint ``eval`` uses, and why."""
    if run.checkpoint == "last":
        return (f"the last checkpoint (update {run.update}, {run.env_steps:,} env steps; --checkpoint best for the "
                "weights of the run's best evaluation)")
    import pandas as pd

    try:
        evaluations = f"{len(pd.read_csv(run.path / 'metrics.csv', usecols=['eval_return_mean']).dropna())} "
    except (OSError, ValueError):  # an unreadable metrics.csv does not stop an evaluation
        evaluations = ""
    return (f"the best checkpoint: update {run.update}, {run.env_steps:,} env steps, the highest evaluation return "
            f"({run.eval_return:.4g}) of the run's {evaluations}evaluations (the later of equal ones)")


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
            if args.name in BEYOND:  # beyond.py draws with report.py's plots, not the reverse
                from societal.experiments import beyond

                table = beyond.summarize(args.name, args.root)
                print(formatted(table), beyond.verdict(table), sep="\n\n")
                return 0
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

    from societal.cluster import ray_cluster
    from societal.distributed import run_on_ray

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


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": run_train, "eval": run_eval, "mnist-classifier": run_mnist_classifier, "sweep": run_sweep,
    "report": run_report, "experiments": run_experiments,
}


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
            return COMMANDS[args.command](args)
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
