"""The Python modules a run's environment needs: a user's own environments, registered with Gymnasium by a module.

A user names such a module (``--import MODULE``, ``imports=(...)``, or an id ``MODULE:ID``); the run records it
in ``config.json``, so that ``eval``, ``--resume`` and ``societal.load`` can import it again later. A run folder
is data, though, and data must never make the library run code it brings along: a module named only by a run's
files is imported from installed code alone (site-packages, ``PYTHONPATH``), never from the current folder or
the run folder, where a downloaded run could have planted it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import gymnasium as gym

from societal.errors import SocietalError

BUILT_IN = ("societal", "gymnasium", "minigrid")  # their environments need no recorded import


def id_module(env_id: str) -> tuple[str, ...]:
    """The module of an id of the form ``MODULE:ID`` (Gymnasium imports it before making the env)."""
    return (env_id.split(":", 1)[0],) if ":" in env_id else ()


def import_named(names: Iterable[str]) -> None:
    """Import modules the user named, as Python would from the current folder; one line if one cannot be."""
    with path_with(Path.cwd()):
        for name in names:
            try:
                importlib.import_module(name)
            except ImportError as e:
                raise SocietalError(f"cannot import module {name!r}: {e}") from None


def import_recorded(env_id: str, names: Iterable[str], run: Path) -> None:
    """Import the modules a run's files name (``names``, and the module of an id ``MODULE:ID``), from installed
    code only (not the current folder nor ``run``)."""
    for name in (*names, *id_module(env_id)):
        if name in sys.modules:
            continue
        with path_without(Path.cwd(), run):
            found = importlib.util.find_spec(name.split(".")[0]) is not None
            if found:
                importlib.import_module(name)
        if not found:
            raise SocietalError(f"{run} needs module {name!r} (it registers the run's environment), which is not "
                                "installed code; install it or put it on PYTHONPATH, or name it again: "
                                f"--import {name} (in Python: import it first)")


def registering_module(env_id: str) -> tuple[str, ...]:
    """The module whose code makes ``env_id``, where a run must record it (a user's own, importable module)."""
    spec = gym.registry.get(env_id.split(":", 1)[-1])
    if spec is None:
        return ()
    entry = spec.entry_point
    module = entry.split(":")[0] if isinstance(entry, str) else getattr(entry, "__module__", "")
    if not module or module == "__main__" or module.split(".")[0] in BUILT_IN:
        return ()
    return (module,)


@contextmanager
def path_with(folder: Path) -> Iterator[None]:
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))


@contextmanager
def path_without(*folders: Path) -> Iterator[None]:
    """``sys.path`` less the entries that are, or lie inside, ``folders`` (``""`` is the current folder)."""
    saved = list(sys.path)
    barred = [f.resolve() for f in folders]

    def barred_entry(entry: str) -> bool:
        where = Path(entry or os.curdir).resolve()
        return any(where == f or f in where.parents for f in barred)

    sys.path[:] = [e for e in saved if not barred_entry(e)]
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = saved
