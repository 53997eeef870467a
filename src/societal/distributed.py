"""Many runs on Ray: a sweep over settings and seeds, or the paper's experiments, as Ray Tune trials.

Every run is a ``societal train`` command with its own ordinary run folder (``eval``, ``load`` and the
reports work on it as on any other). Runs that read other runs' folders (options, transfer) run in a
later stage than those. Each run that starts, finishes or fails prints one line, named by its folder
relative to the sweep's (``mechanism=ccv/seed0``), and a line of counts follows every minute; Tune's own
tables only with ``verbose``.

Ray is started or joined by ``societal.cluster``.

An interrupted sweep goes on with ``resume``: Tune skips the trials that finished, and a trial that was
cut short continues its run from the run's last checkpoint (``societal train --resume``). A failing run
is reported and the others go on; runs that read a failed run are not started.

Importing ``societal`` does not import Ray: only this module and ``societal.cluster`` do.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from societal.cluster import ray_cluster
from societal.errors import RunsLost, SocietalError, Stopped
from societal.grid import Runs, check_grid, check_sweep, grid_runs, record_sweep
from societal.storage import remove_half_made, run_finished


def stages(runs: Runs) -> list[list[int]]:
    """The runs in stages: a run comes after every run whose folder its command names."""
    folders = [str(folder) for folder, _, _ in runs]
    level: list[int] = []
    for i, (_, argv, _) in enumerate(runs):
        level.append(1 + max((level[j] for j, f in enumerate(folders[:i]) if f in argv), default=-1))
    return [[i for i, lv in enumerate(level) if lv == n] for n in range(max(level, default=-1) + 1)]


def trial(config: dict, runs: dict[str, dict]) -> None:
    """A Tune trial: the run ``config["run"]`` of ``runs``, one ``societal train``; each metrics row goes to Tune."""
    from ray import tune

    from societal.learning.loop import train

    run = runs[config["run"]]
    folder = Path(run["folder"])
    os.chdir(run["cwd"])  # the commands' relative folders are the driver's

    def report(row: dict) -> None:
        tune.report({k: float(v) for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)})

    if (folder / "checkpoints" / "last.pt").is_file():  # cut short earlier: go on from its last checkpoint
        train(resume=folder, progress=False, callback=report)
        return
    if folder.exists():  # a run killed before its first checkpoint: nothing to keep, if nothing but a run's files
        remove_half_made(folder)
    train(**{**run["kwargs"], "progress": False, "callback": report})


def run_on_ray(runs: Runs, state: Path, resume: bool = False, cpus_per_run: float = 1.0,
               gpus_per_run: float = 0.0, verbose: bool = False) -> pd.DataFrame:
    """Run ``runs`` stage by stage as Tune trials (Tune's own records in ``state``); inside a ``ray_cluster``.

    Each run is named by its folder relative to ``state``'s parent (the sweep's folder). Prints a line per run
    that starts, finishes or fails and a line of counts every minute; Tune's tables too if ``verbose``.
    Returns one row per run: its folder, its command and how it ended (``done``, ``failed: …``, or ``not run:
    …`` where a run it reads failed).
    """
    import ray
    from ray import tune

    have = {k: ray.cluster_resources().get(k, 0.0) for k in ("CPU", "GPU")}
    if cpus_per_run > have["CPU"] or gpus_per_run > have["GPU"]:  # Tune would wait for them for ever
        raise SocietalError(f"each run asks for {cpus_per_run:g} CPUs and {gpus_per_run:g} GPUs, and the cluster has "
                            f"{have['CPU']:g} CPUs and {have['GPU']:g} GPUs; ask for less (--cpus-per-run, "
                            "--gpus-per-run) or give the private instance more (--cpus)")
    base = state.absolute().parent
    names = [os.path.relpath(folder.absolute(), base) for folder, _, _ in runs]
    table = {name: {"folder": str(folder.absolute()), "kwargs": kwargs, "cwd": os.getcwd()}
             for name, (folder, _, kwargs) in zip(names, runs)}
    trainable = tune.with_resources(tune.with_parameters(trial, runs=table), {"cpu": cpus_per_run, "gpu": gpus_per_run})
    reads = [[j for j, (f, _, _) in enumerate(runs[:i]) if str(f) in argv] for i, (_, argv, _) in enumerate(runs)]
    outcome: dict[int, str] = {}
    plan = stages(runs)
    for n, stage in enumerate(plan):
        for i in stage:
            failed = [str(runs[j][0]) for j in reads[i] if outcome[j] != "done"]
            if failed:
                outcome[i] = f"not run: {', '.join(failed)} did not finish"
        todo = [i for i in stage if i not in outcome]
        if not todo:
            continue
        if len(plan) > 1:
            print(f"{time.strftime('%H:%M:%S')} stage {n + 1} of {len(plan)}: {len(todo)} runs", flush=True)
        path = state.absolute() / f"stage{n}"
        if resume and tune.Tuner.can_restore(str(path)):
            tuner = tune.Tuner.restore(str(path), trainable, resume_unfinished=True, restart_errored=True)
        else:
            tuner = tune.Tuner(trainable, param_space={"run": tune.grid_search([names[i] for i in todo])},
                               tune_config=tune.TuneConfig(trial_name_creator=lambda t: t.config["run"],
                                                           trial_dirname_creator=trial_folder),
                               run_config=tune.RunConfig(name=path.name, storage_path=str(path.parent),
                                                         verbose=1 if verbose else 0, callbacks=[progress()],
                                                         failure_config=tune.FailureConfig(max_failures=0)))
        results = fit(tuner, verbose, lambda name: run_finished(Path(table[name]["folder"])))
        ran = [result.config["run"] for result in results if result.config]
        unnamed = iter(names[i] for i in todo if names[i] not in ran)  # a trial that never started has no config
        for result in results:
            i = names.index(result.config["run"] if result.config else next(unnamed))
            outcome[i] = "done" if result.error is None else f"failed: {last_line(result.error)}"
    return pd.DataFrame([{"run": str(folder), "outcome": outcome.get(i, "not run"), "command": shlex.join(argv)}
                         for i, (folder, argv, _) in enumerate(runs)])


SIGNALS: list[int] = []
"""The SIGINTs that came during the current ``fit`` (Tune's own handler takes them; ``note_sigint``)."""


def fit(tuner, verbose: bool, finished: Callable[[str], bool]) -> list:
    """Tune's results of ``tuner``; SIGINT or SIGTERM stop every trial and raise ``Stopped`` (Tune's state kept).
    Whether a run was cut short is asked of its folder (``finished(name)``): Tune's own record of a trial
    restored a second time, or after its node was lost, does not say. Runs cut short without a signal were
    ended by Ray (a node or a worker lost): ``RunsLost``."""
    SIGNALS.clear()
    with tune_output(verbose), sigterm_as_sigint() as caught:
        results = list(tuner.fit())
    cut = [r for r in results if r.error is None and not (r.config and finished(r.config["run"]))]
    if caught or SIGNALS:  # Tune stopped every trial and saved its state
        number = (caught or SIGNALS)[0]
        raise Stopped(f"stopped by {signal.Signals(number).name}; runs cut short: {len(cut)} (each keeps its "
                      "last checkpoint); go on with the same command and --resume", number)
    if cut:
        named = [r.config["run"] for r in cut if r.config]  # a trial that never started has no config
        raise RunsLost(f"Ray ended {len(cut)} of the runs before they finished, with no error of theirs and no "
                       f"signal ({', '.join(named[:3]) or 'not started'}{', …' if len(named) > 3 else ''}): a node "
                       "or a worker was lost, or this driver cannot read their folders; each keeps its last "
                       "checkpoint; go on with the same command and --resume")
    return results


def note_sigint() -> None:
    """Have the SIGINT handler Tune has just put in (its run's start) note each SIGINT in ``SIGNALS`` first: Tune
    ends its run alike for a SIGINT and for runs that Ray lost. Tune's handler restores the one before its own,
    so that a second SIGINT stops at once, as without this."""
    if threading.current_thread() is not threading.main_thread():
        return
    tune_handler = signal.getsignal(signal.SIGINT)

    def note(number: int, frame) -> None:
        SIGNALS.append(number)
        tune_handler(number, frame)

    if callable(tune_handler):
        signal.signal(signal.SIGINT, note)


@contextmanager
def tune_output(verbose: bool) -> Iterator[None]:
    """Tune's tables and its logged tracebacks of failed runs only if ``verbose`` (a failed run's line names its
    error, and its traceback stays in Tune's ``error.txt``)."""
    logger = logging.getLogger("ray.tune")
    saved = os.environ.get("RAY_AIR_NEW_OUTPUT"), logger.level
    if not verbose:  # Tune's new output prints its experiment's table even when told to be silent; the old does not
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        if saved[0] is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = saved[0]
        logger.setLevel(saved[1])


def trial_folder(trial) -> str:
    """Tune's folder for a trial: its id and the run's name, one path component."""
    return f"{trial.trial_id}_{trial.config['run'].replace('/', '_')}"


def last_line(error: object) -> str:
    """The last line of an error's text: the exception itself, not the traceback before it."""
    return str(error).strip().splitlines()[-1]


def progress(every: float = 60.0):
    """A Tune callback printing a line per run that starts, finishes or fails, and every ``every`` seconds a line
    of counts (Ray imported only here; the class travels by value in Tune's saved state, for ``--resume``)."""
    from ray.tune import Callback

    class Progress(Callback):
        def __init__(self) -> None:
            self.started = self.last = time.monotonic()

        def setup(self, **info) -> None:
            from societal.distributed import note_sigint  # at run time: the class is saved by value, for --resume

            note_sigint()

        def say(self, text: str) -> None:
            print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)

        def on_trial_start(self, iteration, trials, trial, **info) -> None:
            self.say(f"{trial.config['run']}: started")

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self.say(f"{trial.config['run']}: finished")

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            error = Path(trial.error_file) if trial.error_file else None  # written just before, not yet synced
            reason = last_line(error.read_text()) if error and error.is_file() else "see the table at the end"
            self.say(f"{trial.config['run']}: failed: {reason}")

        def on_step_end(self, iteration, trials, **info) -> None:
            if time.monotonic() - self.last < every:
                return
            self.last = time.monotonic()
            count = Counter(t.status for t in trials)
            self.say(f"{count['RUNNING']} running, {count['TERMINATED']} finished, {count['ERROR']} failed, "
                     f"{count['PENDING'] + count['PAUSED']} waiting ({(self.last - self.started) / 60:.0f} min)")

    return Progress()


@contextmanager
def sigterm_as_sigint() -> Iterator[list[int]]:
    """SIGTERM ends a Tune run as SIGINT does (trials stopped, Tune's state saved for ``--resume``) instead of
    killing the driver; the list gets SIGTERM's number if it came."""
    caught: list[int] = []

    def forward(number: int, frame) -> None:
        caught.append(number)
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        yield caught
    finally:
        signal.signal(signal.SIGTERM, previous)


def sweep(env: str, grid: dict[str, list], *, out: str | Path, seeds: int = 1, first_seed: int = 0,
          preset: str | None = None, resume: bool = False, address: str | None = None, cpus: int | None = None,
          cpus_per_run: float = 1.0, gpus_per_run: float = 0.0, verbose: bool = False, **settings) -> pd.DataFrame:
    """Train on ``env`` for every combination of ``grid`` (``Config`` field → values) and ``seeds`` seeds, one
    Ray Tune trial per run, each in ``<out>/<key=value,…>/seed<k>``; ``settings`` are ``Config`` fields of
    every run; ``verbose``: Tune's tables too. Returns how each run ended (``run_on_ray``)."""
    out = Path(out)
    runs = grid_runs(env, check_grid(list(grid.items())), range(first_seed, first_seed + seeds), out, preset,
                     settings)
    check_sweep(runs, out, resume, cpus_per_run, gpus_per_run)
    with ray_cluster(address, cpus):
        record_sweep(runs, out)
        return run_on_ray(runs, out / ".tune", resume, cpus_per_run, gpus_per_run, verbose)
