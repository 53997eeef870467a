"""One run = one folder, written as training goes and read back::

    config.json              everything needed to rerun it: the truth about the run
    metrics.csv              one row per update (units in the column names)
    bids.csv                 per evaluation, state and learner: training visits, Beta mean and std of the bid, Q*,
                             win rate
    tensorboard/             the same scalars as TensorBoard events
    plots/*.png              return curve; bids against Q*
    checkpoints/last.pt      all a resumed run needs (weights, optimisers, random streams, environments, counters)
    checkpoints/best.pt      the weights of the best evaluation so far

This module stores and returns plain dictionaries; it knows nothing of how training works.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import torch

from societal.config import Config
from societal.errors import SocietalError, WriteFailed

FORMAT = 3  # 1: agent weights only; 2: also the state a resumed run needs ("resume"); 3: with its "digest"
METRICS = [
    "update", "env_steps", "auction_steps", "wall_s", "collect_s", "update_s", "env_steps_per_s",
    "episodes", "return_mean", "return_std", "return_min", "return_max", "winner_utility",
    "conservation_residual", "value_loss", "policy_entropy", "clip_fraction", "policy_lr", "entropy_coef",
    "eval_return_mean", "eval_return_std", "eval_success_rate",
    "option_value_loss", "option_policy_entropy", "option_clip_fraction",  # train_options only
]
BIDS = ["update", "env_steps", "state", "visits", "learner", "primitive", "action", "mean_bid", "std_bid", "q_star",
        "win_rate"]
CHECKPOINT_KEYS = {"format", "config", "agent_spec", "agent", "update", "env_steps", "eval_return"}
BUDGET = ("steps", "max_auction_steps", "max_wall_s", "device", "threads", "compile")  # a resumed run may change these


RUN_FILES = {".lock", "config.json", "metrics.csv", "bids.csv", "checkpoints", "plots", "tensorboard"}


def run_finished(path: Path) -> bool:
    """Whether the run in ``path`` has spent its budget, by the last row of its ``metrics.csv``."""
    try:
        config = read_config(path)
        with open(path / "metrics.csv", newline="") as f:
            *_, last = csv.DictReader(f)
        steps, auctions, wall = (float(last[k] or 0) for k in ("env_steps", "auction_steps", "wall_s"))
    except (SocietalError, OSError, ValueError, KeyError):
        return False
    return steps >= config.steps or 0 < config.max_auction_steps <= auctions or 0 < config.max_wall_s <= wall


def remove_half_made(path: Path) -> None:
    """Remove a run folder made by a process that ended before its first checkpoint, if it holds nothing but the
    files a run writes; anything else in it is refused in one line, never deleted."""
    if (path / "checkpoints" / "last.pt").exists():
        raise SocietalError(f"{path} holds a run that can be resumed; it is not removed")
    foreign = [p for p in path.iterdir() if p.name not in RUN_FILES and not p.name.endswith(".tmp")]
    foreign += [p for sub in ("checkpoints", "plots", "tensorboard") if (path / sub).is_dir()
                for p in (path / sub).iterdir() if p.suffix not in (".pt", ".png", ".tmp")
                and not p.name.startswith("events.out.tfevents.")]
    if foreign or not (path / "config.json").is_file():
        names = ", ".join(p.name for p in foreign[:3]) or "no config.json"
        raise SocietalError(f"{path} is not a half-made run of societal's ({names}); move it away to run it again")
    shutil.rmtree(path)


def check_new(path: Path) -> None:
    """Refuse an output folder that exists or cannot be created, before anything is written."""
    if path.is_symlink() and not path.exists():
        raise SocietalError(f"output folder {path} is a dangling link; choose another output folder (out) or remove it")
    if path.exists():
        raise SocietalError(f"output folder {path} already exists; choose another output folder (out) or remove it")
    parent = path.absolute().parent
    while not parent.exists() and not parent.is_symlink():
        parent = parent.parent
    if not parent.is_dir():
        raise SocietalError(f"cannot create output folder {path}: {parent} is not a folder")
    try:  # what the process may do there, not what the permission bits say (root ignores them)
        tempfile.TemporaryFile(dir=parent).close()
    except OSError as e:
        raise SocietalError(f"cannot create output folder {path}: {parent} is not writable ({e.strerror})") from None


@contextmanager
def _writing(what: Path) -> Iterator[None]:
    """Turn an error while writing ``what`` (a full disk, a file-size limit, a vanished folder) into one line;
    ``torch.save`` reports such errors as a ``RuntimeError``."""
    try:
        yield
    except OSError as e:
        raise WriteFailed(f"cannot write {what}: {e.strerror or e}") from None
    except RuntimeError as e:
        if "write" not in str(e):
            raise
        raise WriteFailed(f"cannot write {what}: {str(e).splitlines()[0]}") from None


def _rows_until(file: Path, columns: list[str], update: int) -> bytes:
    """``file``'s header and its complete rows of updates up to ``update``, byte for byte as written. A line that is
    no such row (cut short or garbled by a process killed while writing it, or by a damaged disk) is dropped, and a
    header that is none is written anew."""
    lines = file.read_bytes().splitlines(keepends=True) or [b""]
    header = _fields(lines[0])
    if not header or "update" not in header:
        header, lines[0] = columns, (",".join(columns) + "\r\n").encode()
    at = header.index("update")
    kept = [line for line in lines[1:] if (row := _fields(line)) and len(row) == len(header) and row[at].isdigit()
            and int(row[at]) <= update]
    return lines[0] + b"".join(kept)


def _fields(line: bytes) -> list[str] | None:
    """The CSV fields of a whole line of text; None for a line cut short, or one that is not text."""
    try:
        return next(csv.reader([line.decode()]), []) if line.endswith(b"\n") else None
    except (UnicodeDecodeError, csv.Error):
        return None


class RunWriter:
    """Creates a run folder (or reopens one to resume after update ``resume_at``) and appends to it."""

    def __init__(self, path: Path, config: Config, resume_at: tuple[int, int] | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # slow import: only when a run starts

        self.path = path
        with _writing(path):
            if resume_at is None:
                check_new(path)
                try:
                    path.mkdir(parents=True)
                except FileExistsError:  # made by another process since check_new
                    raise SocietalError(f"output folder {path} already exists; choose another output folder (out) "
                                        "or remove it") from None
            self.lock = hold_lock(path)
            if resume_at is None:
                (path / "checkpoints").mkdir()
                (path / "plots").mkdir()
            for stale in path.rglob(".*.tmp"):  # left by a process killed while writing
                stale.unlink()
            write_atomically(path / "config.json", (json.dumps(config.to_dict(), indent=2) + "\n").encode())
            self.files = {}
            for name, columns in (("metrics", METRICS), ("bids", BIDS)):
                file = path / f"{name}.csv"
                if resume_at is not None:  # rows written after the checkpoint are done again
                    write_atomically(file, _rows_until(file, columns, resume_at[0]))
                f = open(file, "a" if resume_at is not None else "w", newline="")  # noqa: SIM115  (see close())
                writer = csv.DictWriter(f, columns, restval="")
                if resume_at is None:
                    writer.writeheader()
                self.files[name] = (f, writer)
            # a resumed run drops the events logged after its checkpoint
            purge = None if resume_at is None else resume_at[1] + 1
            self.tensorboard = SummaryWriter(str(path / "tensorboard"), purge_step=purge)

    def metrics(self, row: dict) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        self._append("metrics", [row])
        # one event per row: a scalar each (SummaryWriter.add_scalar) costs more than the rest of a Chain update
        scalars = [Summary.Value(tag=key, simple_value=value) for key, value in row.items()
                   if key not in ("update", "env_steps") and isinstance(value, float) and math.isfinite(value)]
        with _writing(self.path / "tensorboard"):  # its thread's write error surfaces at the next event
            self.tensorboard.file_writer.add_summary(Summary(value=scalars), row["env_steps"])

    def flush(self) -> None:
        """Write out the TensorBoard events logged so far (before a checkpoint: none is lost with the process)."""
        with _writing(self.path / "tensorboard"):
            self.tensorboard.flush()

    def bids(self, rows: list[dict]) -> None:
        self._append("bids", rows)

    def _append(self, name: str, rows: list[dict]) -> None:
        f, writer = self.files[name]
        with _writing(Path(f.name)):
            writer.writerows(rows)
            f.flush()

    def checkpoint(self, name: str, payload: dict) -> None:
        """Write ``checkpoints/<name>.pt`` atomically: a failed write leaves the previous one and no temp file."""
        file = self.path / "checkpoints" / f"{name}.pt"
        tmp = file.with_name(f".{name}.pt.tmp")
        try:
            with _writing(file):
                torch.save({"format": FORMAT, **payload, "digest": digest(payload)}, tmp)
                tmp.replace(file)
        finally:
            tmp.unlink(missing_ok=True)

    def close(self) -> None:
        try:
            with _writing(self.path / "tensorboard"):
                self.tensorboard.close()
        finally:
            for f, _ in self.files.values():
                f.close()
            self.lock.close()  # releases the run for the next writer


def hold_lock(path: Path) -> IO:
    """Take the run folder's lock (``.lock``, holding the writer's pid) for as long as the file stays open.

    One process writes a run at a time: a second writer is refused with the holder's pid. The operating system
    releases the lock when its process ends, however it ends, so a killed run's folder is free at once.
    """
    f = open(path / ".lock", "a+")  # noqa: SIM115  (held open: the lock lasts as long as the file is)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise SocietalError(f"{path} is being written by process {holder}; wait for it to end or stop it") from None
    f.truncate(0)
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def write_atomically(file: Path, data: bytes) -> None:
    tmp = file.with_name(f".{file.name}.tmp")
    try:
        with _writing(file):
            tmp.write_bytes(data)
            tmp.replace(file)
    finally:
        tmp.unlink(missing_ok=True)


def digest(payload: object) -> str:
    """SHA-256 of a checkpoint's content: every tensor's dtype, shape and bytes, and every other value's repr,
    in order. Written with the checkpoint and checked on every load, since ``torch.load`` reads damaged tensor
    data without a word."""
    h = hashlib.sha256()

    def walk(x: object) -> None:
        if isinstance(x, dict):
            for k in sorted(x, key=repr):
                h.update(repr(k).encode())
                walk(x[k])
        elif isinstance(x, list | tuple):
            h.update(f"{type(x).__name__}{len(x)}".encode())
            for v in x:
                walk(v)
        elif isinstance(x, torch.Tensor):
            h.update(f"{x.dtype}{tuple(x.shape)}".encode())
            h.update(x.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(repr(x).encode())

    walk(payload)
    return h.hexdigest()


def read_config(path: Path) -> Config:
    """The run folder's ``config.json``, validated; one clear line if it is missing or corrupt."""
    file = path / "config.json"
    if not file.is_file():
        raise SocietalError(f"{path} is not a run folder (no config.json)")
    try:
        data = json.loads(file.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return Config.from_dict(data).validate()
    except (ValueError, TypeError, RecursionError, SocietalError) as e:
        raise SocietalError(f"corrupt {file}: {str(e).splitlines()[0]}") from None


def read_checkpoint(path: Path, name: str, config: Config) -> dict:
    """``checkpoints/<name>.pt`` of the run folder ``path`` whose ``config.json`` says ``config``."""
    if name not in ("best", "last"):
        raise SocietalError(f"unknown checkpoint {name!r}; allowed: best, last")
    file = checkpoint_file(path, name)
    if not file.is_file():
        raise SocietalError(f"{path} has no checkpoint {file.name} (every run writes best.pt and last.pt as it starts)")
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict) or not ckpt.keys() >= CHECKPOINT_KEYS or ckpt["format"] not in (1, 2, FORMAT):
            raise ValueError("not a societal checkpoint")
        content = {k: v for k, v in ckpt.items() if k not in ("format", "digest")}
        if ckpt["format"] >= 3 and ckpt.get("digest") != digest(content):
            raise ValueError("its content does not match the digest written with it (the file is damaged)")
        if not all(t.isfinite().all() for t in ckpt["agent"].values() if t.is_floating_point()):
            raise ValueError("it holds weights that are not finite")
        theirs = Config.from_dict(ckpt["config"]).to_dict()
    except Exception as e:  # a corrupt or foreign file: one line, without PyTorch's advice to trust it
        reason = str(e).split("\n")[0].split(" (")[0].rstrip(".") if str(e) else repr(e)
        raise SocietalError(f"cannot read checkpoint {file}: {reason}") from None
    mine = config.to_dict()
    differ = sorted(k for k in mine if k not in BUDGET and mine[k] != theirs[k])
    if differ:
        raise SocietalError(f"checkpoint {file} does not belong to {path}: its settings differ from config.json "
                            f"in {', '.join(differ)}")
    return ckpt


def checkpoint_file(path: Path, name: str) -> Path:
    return path / "checkpoints" / f"{name}.pt"


def load_weights(module: torch.nn.Module, weights: object, file: Path, what: str) -> None:
    """Load ``weights`` (read from the checkpoint ``file``) into ``module``; weights of other names or shapes (a
    run of another task, a file rewritten with its digest) are one line naming ``file`` and what differs."""
    try:
        module.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as e:
        # PyTorch's first line only says which module; the second what differs
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise SocietalError(f"checkpoint {file} does not fit {what}: {lines[min(1, len(lines) - 1)].rstrip('.')}"
                            ) from None


def check_fits(file: Path, expected: dict, given: dict, optional: tuple[str, ...] = ()) -> None:
    """Refuse, in one line naming ``file``, a checkpoint's content ``given`` that lacks an entry of ``expected``
    (the same parts as this run builds them), or holds a tensor of another shape or dtype there: loading it would
    fail midway, or broadcast it without a word. Entries named in ``optional`` may be absent (older checkpoints)."""
    found = _difference(expected, given, "", optional)
    if found:
        raise SocietalError(f"checkpoint {file} does not fit this run: {found}")


def _difference(expected: object, given: object, where: str, optional: tuple[str, ...]) -> str | None:
    """Where ``given`` first differs from ``expected`` (``where``: the dotted path to both), or None."""
    if isinstance(expected, dict):
        if not isinstance(given, dict):
            return f"{where} is not a dictionary"
        for key, value in expected.items():
            inner = f"{where}.{key}" if where else str(key)
            if key not in given:
                if key in optional:
                    continue
                return f"{inner} is missing"
            found = _difference(value, given[key], inner, optional)
            if found:
                return found
    elif isinstance(expected, torch.Tensor):
        if not isinstance(given, torch.Tensor):
            return f"{where} is not a tensor"
        if given.dtype != expected.dtype or given.shape != expected.shape:
            return (f"{where} is {str(given.dtype).removeprefix('torch.')} of shape {tuple(given.shape)}, where "
                    f"{str(expected.dtype).removeprefix('torch.')} of shape {tuple(expected.shape)} is needed")
    return None
