"""Many runs on Ray: a sweep over settings and seeds, or the paper's experiments, as Ray Tune trials.

Every run is a ``societal train`` command with its own ordinary run folder (``eval``, ``load`` and the
reports work on it as on any other). Runs that read other runs' folders (options, transfer) run in a
later stage than those. Without an address a private Ray instance is started on this machine (at
127.0.0.1, no dashboard, no usage reporting, a capped object store) and shut down at the end; with one,
the runs join that cluster, and their folders must be on storage every node can write.

Ray's servers listen on every network interface; what protects them is Ray's token authentication, on by
default (the token is in ``~/.ray/auth_token``, or ``$RAY_AUTH_TOKEN``; every node and client needs it).

An interrupted sweep goes on with ``resume``: Tune skips the trials that finished, and a trial that was
cut short continues its run from the run's last checkpoint (``societal train --resume``). A failing run
is reported and the others go on; runs that read a failed run are not started.

Importing ``societal`` does not import Ray: only this module does.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import product
from pathlib import Path

import pandas as pd

from societal.errors import SocietalError, Stopped

Runs = list[tuple[Path, list[str], dict]]  # (run folder, its command after "societal", train()'s arguments)


@contextmanager
def ray_cluster(address: str | None = None, cpus: int | None = None) -> Iterator[None]:
    """Join the Ray cluster at ``address``, or start a private one on this machine with ``cpus`` CPUs."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # run folders are absolute; keep the working directory
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # each run writes its own TensorBoard events
    os.environ.setdefault("RAY_worker_niceness", "0")  # Ray's default, 15, starves the runs on a busy machine
    token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    if address is not None and ("RAY_AUTH_TOKEN" in os.environ or token.is_file()):
        os.environ.setdefault("RAY_AUTH_MODE", "token")  # a cluster started by `ray start` asks for its token
    import ray  # reads RAY_AUTH_MODE as it is imported

    if address is not None:
        ray.init(address=address, logging_level="ERROR")
    else:
        ray.init(address="local", num_cpus=cpus or os.cpu_count(), include_dashboard=False,  # never another's
                 _node_ip_address="127.0.0.1",
                 object_store_memory=256 * 2**20, logging_level="ERROR")
    try:
        yield
    finally:
        ray.shutdown()


def stages(runs: Runs) -> list[list[int]]:
    """The runs in stages: a run comes after every run whose folder its command names."""
    folders = [str(folder) for folder, _, _ in runs]
    level: list[int] = []
    for i, (_, argv, _) in enumerate(runs):
        level.append(1 + max((level[j] for j, f in enumerate(folders[:i]) if f in argv), default=-1))
    return [[i for i, lv in enumerate(level) if lv == n] for n in range(max(level, default=-1) + 1)]


def trial(config: dict) -> None:
    """A Tune trial: one ``societal train`` run; each metrics row is reported to Tune."""
    from ray import tune

    from societal.learning.loop import train

    folder = Path(config["run"]["folder"])
    os.chdir(config["run"]["cwd"])  # the commands' relative folders are the driver's

    def report(row: dict) -> None:
        tune.report({k: float(v) for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)})

    if (folder / "checkpoints" / "last.pt").is_file():  # cut short earlier: go on from its last checkpoint
        train(resume=folder, progress=False, callback=report)
        return
    if folder.exists():  # a run killed before its first checkpoint holds nothing to keep
        shutil.rmtree(folder)
    train(**{**config["run"]["kwargs"], "progress": False, "callback": report})


def run_on_ray(runs: Runs, state: Path, resume: bool = False, cpus_per_run: float = 1.0,
               gpus_per_run: float = 0.0) -> pd.DataFrame:
    """Run ``runs`` stage by stage as Tune trials (Tune's own records in ``state``); inside a ``ray_cluster``.

    Returns one row per run: its folder, its command and how it ended (``done``, ``failed: …``, or ``not run:
    …`` where a run it reads failed).
    """
    from ray import tune

    trainable = tune.with_resources(trial, {"cpu": cpus_per_run, "gpu": gpus_per_run})
    reads = [[j for j, (f, _, _) in enumerate(runs[:i]) if str(f) in argv] for i, (_, argv, _) in enumerate(runs)]
    outcome: dict[int, str] = {}
    for n, stage in enumerate(stages(runs)):
        for i in stage:
            failed = [str(runs[j][0]) for j in reads[i] if outcome[j] != "done"]
            if failed:
                outcome[i] = f"not run: {', '.join(failed)} did not finish"
        todo = [i for i in stage if i not in outcome]
        if not todo:
            continue
        path = state.absolute() / f"stage{n}"
        if resume and tune.Tuner.can_restore(str(path)):
            tuner = tune.Tuner.restore(str(path), trainable, resume_unfinished=True, restart_errored=True)
        else:
            space = {"run": tune.grid_search([{"folder": str(runs[i][0].absolute()), "kwargs": runs[i][2],
                                               "cwd": os.getcwd()} for i in todo])}
            tuner = tune.Tuner(trainable, param_space=space, tune_config=tune.TuneConfig(
                trial_name_creator=lambda t: trial_name(t.config["run"]["folder"]),
                trial_dirname_creator=lambda t: f"{t.trial_id}_{trial_name(t.config['run']['folder'])}"),
                run_config=tune.RunConfig(name=path.name, storage_path=str(path.parent), verbose=1,
                                          failure_config=tune.FailureConfig(max_failures=0)))
        with sigterm_as_sigint() as caught:
            results = list(tuner.fit())
        cut = [r for r in results if r.error is None and not r.metrics.get("done")]
        if caught or cut:  # Tune stopped every trial and saved its state
            number = caught[0] if caught else signal.SIGINT
            raise Stopped(f"stopped by {signal.Signals(number).name}; runs cut short: {len(cut)} (each keeps its "
                          "last checkpoint); go on with the same command and --resume", number)
        for result in results:
            folder = Path(result.config["run"]["folder"])
            i = next(j for j in todo if runs[j][0].absolute() == folder)
            outcome[i] = "done" if result.error is None else f"failed: {str(result.error).strip().splitlines()[-1]}"
    return pd.DataFrame([{"run": str(folder), "outcome": outcome.get(i, "not run"), "command": shlex.join(argv)}
                         for i, (folder, argv, _) in enumerate(runs)])


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


def trial_name(folder: str) -> str:
    """``<setting or condition>/seed<k>``: what tells a run apart in Tune's tables."""
    return "/".join(Path(folder).parts[-2:]).replace("/", "_")


def grid_runs(env: str, grid: dict[str, list], seeds: range, out: Path, preset: str | None,
              settings: dict) -> Runs:
    """One run per (setting, seed): ``<out>/<key=value,…>/seed<k>``, ``settings`` (``Config`` fields) in every
    run, the grid's values on top."""
    keys, runs = list(grid), []
    flags = ["--preset", preset] if preset else []
    for values in product(*(grid[k] for k in keys)):
        name = ",".join(f"{k}={v}" for k, v in zip(keys, values)) or "default"
        fields = {**settings, **dict(zip(keys, values))}
        sets = [a for k, v in fields.items() for a in ("--set", f"{k}={v}")]
        for seed in seeds:
            folder = out / name / f"seed{seed}"
            runs.append((folder, ["train", env, *flags, *sets, "--seed", str(seed), "--out", str(folder)],
                         {"env": env, "preset": preset, **fields, "seed": seed, "out": folder}))
    return runs


def sweep(env: str, grid: dict[str, list], *, out: str | Path, seeds: int = 1, first_seed: int = 0,
          preset: str | None = None, resume: bool = False, address: str | None = None, cpus: int | None = None,
          cpus_per_run: float = 1.0, gpus_per_run: float = 0.0, **settings) -> pd.DataFrame:
    """Train on ``env`` for every combination of ``grid`` (``Config`` field → values) and ``seeds`` seeds, one
    Ray Tune trial per run, each in ``<out>/<key=value,…>/seed<k>``; ``settings`` are ``Config`` fields of
    every run. Returns how each run ended (``run_on_ray``)."""
    out = Path(out)
    runs = grid_runs(env, grid, range(first_seed, first_seed + seeds), out, preset, settings)
    check_sweep(runs, resume, cpus_per_run, gpus_per_run)
    with ray_cluster(address, cpus):
        table = run_on_ray(runs, out / ".tune", resume, cpus_per_run, gpus_per_run)
    (out / "sweep.json").write_text(json.dumps({"env": env, "grid": grid, "seeds": seeds, "first_seed": first_seed,
                                                "preset": preset, "settings": settings}, indent=2) + "\n")
    return table


def check_sweep(runs: Runs, resume: bool, cpus_per_run: float, gpus_per_run: float) -> None:
    """Refuse, before Ray starts, a sweep whose runs would fail on their settings or overwrite earlier runs."""
    from societal.environments.vector import make
    from societal.learning.loop import configure

    if cpus_per_run <= 0 or gpus_per_run < 0:
        raise SocietalError(f"--cpus-per-run must be positive and --gpus-per-run 0 or more, got {cpus_per_run} "
                            f"and {gpus_per_run}")
    made = set()
    for _, _, kwargs in runs:
        config = configure(kwargs["env"], kwargs["preset"], {k: v for k, v in kwargs.items()
                                                             if k not in ("env", "preset", "out", "progress")})
        if (key := repr((config.env, config.env_kwargs))) not in made:  # an unknown id or argument: one line here
            make(config.env, **config.env_kwargs).close()
            made.add(key)
    existing = [str(f) for f, _, _ in runs if f.exists() and not resume]
    if existing:
        raise SocietalError(f"run folders already exist: {', '.join(existing[:3])}; use --resume to go on with "
                            "an interrupted sweep, or another --out")
