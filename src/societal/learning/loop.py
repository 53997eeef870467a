"""``train``: start (or resume) a run, step it until its budget is spent or a signal stops it, then write its
plots. SIGINT and SIGTERM let the current update finish, write a checkpoint and the plots, and raise
``Stopped`` (the CLI exits 130 or 143) with the command that resumes the run."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from tqdm import tqdm

from societal.config import Config, from_preset
from societal.environments.vector import make
from societal.errors import SocietalError, SocietalWarning, Stopped
from societal.evaluation import no_better_than_random
from societal.imports import id_module, import_named, import_recorded, registering_module
from societal.learning.scaling import fit_return_scale
from societal.learning.trainer import Trainer
from societal.plots import payable, plot_bids, plot_returns
from societal.qualitative import episode_strip, mental_rotation_report
from societal.run import Run, load
from societal.storage import BUDGET, check_new, read_checkpoint, read_config


def train(
    env: str = "societal/Chain-v0",
    *,
    preset: str | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
    callback: Callable[[dict], bool | None] | None = None,
    **overrides,
) -> Run:
    """Train a society (or a monolithic baseline) on ``env``; ``overrides`` are ``Config`` fields, on top of
    the ``preset``'s settings (``societal.config.PRESETS``; default: ``config.default_preset(env)``:
    ``paper`` on the paper's tasks, ``control`` on tasks of feature vectors without a table, ``general`` on any
    other).

    ``resume``: a stopped run's folder, continued from its last checkpoint (only the budget, ``device`` and
    ``threads`` may change). ``callback(row)`` is called with every metrics row; returning ``False`` stops.
    """
    with stopping_on_signals() as stop:  # already while the folder is made: a stop then leaves a resumable run
        trainer = resumed(Path(resume), overrides) if resume is not None else started(env, preset, out, overrides)
        with Progress(trainer, progress) as bar:
            try:
                while not trainer.finished() and not stop:
                    row = trainer.step()
                    bar.show(row)
                    if callback is not None and callback(row) is False:
                        break
            except BaseException:
                with contextlib.suppress(SocietalError):  # the first failure is the one to report
                    trainer.writer.close()  # what failed is not saved: the last checkpoint stays the last good one
                trainer.finish_compiling()
                raise
            trainer.close(evaluation=not stop)
    run = outputs(trainer)
    if stop:
        name = signal.Signals(stop[0]).name
        raise Stopped(f"stopped by {name} after update {trainer.update} ({trainer.env_steps} env steps); resume "
                      f"with: societal train --resume {trainer.out}", stop[0])
    return run


def started(env: str, preset: str | None, out: str | Path | None, overrides: dict) -> Trainer:
    """A new run in ``out`` (default: ``default_out``), with its first evaluation and checkpoint written."""
    config = configure(env, preset, overrides)
    out = Path(out) if out is not None else default_out(config)
    check_new(out)  # before anything is built
    return Trainer(fit_return_scale(config), out)


def configure(env: str, preset: str | None, overrides: dict) -> Config:
    """The validated ``Config`` of a new run: ``preset``'s settings with ``overrides`` (``Config`` fields) on top."""
    names = [f.name for f in dataclasses.fields(Config) if f.name not in ("env", "preset")]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise SocietalError(f"unknown setting {', '.join(unknown)}; allowed: {', '.join(names)}")
    named = overrides.get("imports", ())
    if not isinstance(named, list | tuple) or not all(isinstance(m, str) for m in named):
        raise SocietalError(f"imports must be a tuple of module names, got {named!r}")
    import_named((*named, *id_module(env)))  # first: the preset chosen may depend on the environment they register
    config = from_preset(preset, env, **overrides).validate()
    config.imports = tuple(dict.fromkeys((*config.imports, *registering_module(env))))
    return config


def resumed(path: Path, overrides: dict) -> Trainer:
    refused = sorted(set(overrides) - set(BUDGET))
    if refused:
        raise SocietalError(f"a resumed run keeps its settings; only {', '.join(BUDGET)} may change, "
                            f"not {', '.join(refused)}")
    config = dataclasses.replace(read_config(path), **overrides).validate()
    import_recorded(config.env, config.imports, path)
    checkpoint = read_checkpoint(path, "last", config)
    if "resume" not in checkpoint:
        raise SocietalError(f"{path}'s last checkpoint was written by an older societal and cannot be resumed")
    return Trainer(config, path, checkpoint)


def default_out(config: Config) -> Path:
    """``runs/<env>_<mechanism or agent>_seed<k>_<time>_<random>``: two runs started together never collide."""
    name = config.env.replace("/", "-")
    kind = config.mechanism if config.agent == "society" else config.agent
    return Path("runs") / f"{name}_{kind}_seed{config.seed}_{datetime.now():%Y%m%d-%H%M%S}_{uuid.uuid4().hex[:6]}"


@contextmanager
def stopping_on_signals() -> Iterator[list[int]]:
    """Within the block, SIGINT and SIGTERM are noted (the list gets the signal's number) instead of stopping at
    once; a second one stops at once. Outside the main thread, signals are left alone."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def note(number: int, frame) -> None:
        caught.append(number)
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, previous[s])

    previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class Progress:
    """A progress bar on a terminal; elsewhere (a log file, a job system) one line every ``every_s`` seconds."""

    def __init__(self, trainer: Trainer, enabled: bool, every_s: float = 10.0) -> None:
        self.trainer, self.every_s, self.shown = trainer, every_s, time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.enabled, self.evaluation = enabled, "none yet"
        self.bar = tqdm(total=trainer.config.steps, initial=trainer.env_steps, unit="step", unit_scale=True,
                        disable=not (enabled and self.tty))

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()

    def show(self, row: dict) -> None:
        if "eval_return_mean" in row:
            self.evaluation = f"{row['eval_return_mean']:.4g} at {row['env_steps']:,} env steps"
        if self.tty:  # whole updates may pass the budget: the bar stops at it (the run's last line says by how much)
            self.bar.update(min(row["env_steps"], self.bar.total) - self.bar.n)
            self.bar.set_postfix(ret=f"{row['return_mean']:.3f}")
        elif self.enabled and time.perf_counter() - self.shown >= self.every_s:
            self.shown = time.perf_counter()
            print(f"{self.trainer.out}: {row['env_steps']:,} / {self.trainer.config.steps:,} env steps, "
                  f"{row['env_steps_per_s']:,.0f} env steps/s, evaluation return {self.evaluation}",
                  file=sys.stderr, flush=True)


def outputs(trainer: Trainer) -> Run:
    """The run as trained (its last weights), with its plots and, for image tasks, an evaluation episode."""
    config, out, parts = trainer.config, trainer.out, trainer.parts
    run = load(out, "last")
    run.agent = parts.agent  # the same weights, on the training device
    # the evaluation's own task: its table says what one episode can pay
    bounds = payable(make(config.env, **{**config.env_kwargs, **config.eval_env_kwargs})) if parts.eval_env.indexed \
        else None
    plot_returns(run.metrics, out / "plots" / "returns.png", config.env, bounds)
    unlearned = no_better_than_random(parts.agent, config, run.metrics.eval_return_mean.dropna().tolist(),
                                      10**6 + config.seed * 1000, parts.eval_primitives, parts.eval_env)
    if unlearned is not None:
        warnings.warn(unlearned, SocietalWarning, stacklevel=2)
    if parts.bids is not None:
        plot_bids(run.bids, out / "plots" / "bids.png", config.env)
    if config.env == "societal/MentalRotation-v0":
        mental_rotation_report(run, out / "qualitative")
    elif parts.agent.obs_ndim == 3:  # image observations: show an evaluation episode
        episode_strip(run, out / "qualitative" / "episode.png")
    return run
