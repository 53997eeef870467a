"""A sweep's runs: every combination of a grid of settings, and seeds, each in its own folder under the sweep's.

A run's folder is ``<out>/<key=value,…>/seed<k>``, its name made from the values by a safe encoding: a value's
text keeps letters, digits and ``_.,=()+-``; any other character becomes ``%XX`` (as in a URL), so no name holds
a path separator or is ``..``, and distinct values give distinct names; a long name is cut and ends with a
digest of the whole. Everything a grid can get wrong is refused, in one line, before Ray starts.
"""

from __future__ import annotations

import hashlib
import json
import os
from itertools import product
from pathlib import Path
from urllib.parse import quote

from societal.errors import SocietalError

Runs = list[tuple[Path, list[str], dict]]  # (run folder, its command after "societal", train()'s arguments)
SAFE = "_.,=()+-"
LONGEST = 120  # characters of a folder name


def folder_name(pairs: list[tuple[str, object]]) -> str:
    """``key=value,…`` of one setting, safe as one folder name."""
    name = quote(",".join(f"{k}={v}" for k, v in pairs), safe=SAFE) or "default"
    if name.startswith("."):  # no hidden folder, and never "." or ".."
        name = "%2E" + name[1:]
    if len(name) > LONGEST:
        name = f"{name[:LONGEST - 17]}~{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    return name


def check_grid(grid: list[tuple[str, list]]) -> dict[str, list]:
    """The grid as a dict, refusing a key given twice, seeds, and values that are equal once read."""
    keys = [k for k, _ in grid]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise SocietalError(f"--grid {twice[0]} is given more than once; give all its values at once: "
                            f"--grid {twice[0]}=V1,V2,…")
    if "seed" in keys:
        raise SocietalError("seeds are not a grid setting: use --seeds N (and --first-seed K)")
    for key, values in grid:
        for i, v in enumerate(values):
            if any(v == w and type(v) is type(w) for w in values[:i]):
                raise SocietalError(f"--grid {key} has the value {v!r} twice (values are compared once read)")
    return dict(grid)


def grid_runs(env: str, grid: dict[str, list], seeds: range, out: Path, preset: str | None,
              settings: dict) -> Runs:
    """One run per (setting, seed): ``<out>/<key=value,…>/seed<k>``, ``settings`` (``Config`` fields) in every
    run, the grid's values on top."""
    keys, runs = list(grid), []
    flags = ["--preset", preset] if preset else []
    for values in product(*(grid[k] for k in keys)):
        fields = {**settings, **dict(zip(keys, values))}
        sets = [a for k, v in fields.items() for a in ("--set", f"{k}={v}")]
        for seed in seeds:
            folder = out / folder_name(list(zip(keys, values))) / f"seed{seed}"
            runs.append((folder, ["train", env, *flags, *sets, "--seed", str(seed), "--out", str(folder)],
                         {"env": env, "preset": preset, **fields, "seed": seed, "out": folder}))
    return runs


def check_sweep(runs: Runs, out: Path, resume: bool, cpus_per_run: float, gpus_per_run: float) -> None:
    """Refuse, before Ray starts, a sweep whose runs would fail on their settings or overwrite earlier runs, and
    a resumed one whose runs are not the ones it started with."""
    from societal.environments.vector import make
    from societal.learning.loop import configure

    if cpus_per_run <= 0 or gpus_per_run < 0:
        raise SocietalError(f"--cpus-per-run must be positive and --gpus-per-run 0 or more, got {cpus_per_run} "
                            f"and {gpus_per_run}")
    if out.exists() and not out.is_dir():
        raise SocietalError(f"--out {out} is a file; the sweep needs a folder")
    made = set()
    for _, _, kwargs in runs:
        config = configure(kwargs["env"], kwargs["preset"], {k: v for k, v in kwargs.items()
                                                             if k not in ("env", "preset", "out", "progress")})
        if (key := repr((config.env, config.env_kwargs))) not in made:  # an unknown id or argument: one line here
            make(config.env, **config.env_kwargs).close()
            made.add(key)
    record = out / "sweep.json"
    if resume:
        if not record.is_file():
            raise SocietalError(f"{out} holds no sweep to resume (no sweep.json)")
        if json.loads(record.read_text()) != plan(runs, out):
            raise SocietalError(f"a resumed sweep keeps its runs and their settings; {out} was started with other "
                                "ones (a new --steps: resume each run with societal train --resume RUN --steps N)")
        return
    existing = [str(f) for f, _, _ in runs if f.exists()] + ([str(record)] if record.exists() else [])
    if existing:
        raise SocietalError(f"run folders already exist: {', '.join(existing[:3])}; use --resume to go on with "
                            "an interrupted sweep, or another --out")


def plan(runs: Runs, out: Path) -> list:
    """The runs as ``sweep.json`` records them: each by its folder relative to ``out`` and its command without
    ``--out``, so that a moved sweep is the same sweep."""
    return [[os.path.relpath(folder, out), argv[:-2]] for folder, argv, _ in runs]


def record_sweep(runs: Runs, out: Path) -> None:
    """``<out>/sweep.json`` (``plan``), what ``--resume`` must find again; written once the sweep starts."""
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "sweep.json").exists():
        (out / "sweep.json").write_text(json.dumps(plan(runs, out), indent=1) + "\n")
