"""The MNIST CNN, the canvas and the cached classifier, on small generated data (no real MNIST)."""

import numpy as np
import pytest
import torch

from societal.environments import mnist_classifier as mc
from societal.environments.mnist_data import Mnist
from societal.errors import SocietalError
from societal.networks import StackedModule


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Digit k is a bright 6×6 block at one of 10 positions, with noise: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(y):
        r, c = 3 + 12 * (k // 5), 1 + 5 * (k % 5)
        x[i, r:r + 6, c:c + 6] = 255
    return x, y.astype(np.int64)


@pytest.fixture
def data() -> Mnist:
    return Mnist(*synthetic(240, 0), *synthetic(100, 1))


@pytest.fixture
def mnist_dir(tmp_path, data):
    folder = tmp_path / "mnist"
    folder.mkdir()
    np.savez(folder / "mnist.npz", **data._asdict())
    return folder


def test_canvas_places_and_scales():
    x = np.zeros((2, 28, 28), np.uint8)
    x[0, 0, 0], x[1, 27, 27], x[1, 5, 7] = 255, 51, 102
    c = mc.canvas(x)
    assert c.shape == (2, 1, 64, 64) and c.dtype == torch.float32
    assert c[0, 0, 18, 18] == 1 and c[1, 0, 45, 45] == pytest.approx(0.2) and c[1, 0, 23, 25] == pytest.approx(0.4)
    assert c.sum() == pytest.approx(1.6)
    assert torch.equal(mc.canvas(torch.from_numpy(x)), c)


@pytest.mark.parametrize("out", [10, 32])
def test_cnn_shapes_and_no_buffers(out):
    net = mc.mnist_cnn(out)
    assert net(torch.rand(5, 1, 64, 64)).shape == (5, out)
    assert list(net.buffers()) == []
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())


def test_cnn_stacks():
    stacked = StackedModule(lambda: mc.mnist_cnn(32))
    theta = torch.empty(3, stacked.size)
    stacked.init_(theta)
    x = torch.rand(4, 1, 64, 64)
    shared, own = stacked(theta, x), stacked(theta, x.expand(3, -1, -1, -1, -1), batch_dims=2)
    assert shared.shape == (3, 4, 32)
    for k in range(3):
        net = mc.mnist_cnn(32)
        torch.nn.utils.vector_to_parameters(theta[k], net.parameters())
        torch.testing.assert_close(shared[k], net(x), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(own[k], net(x), atol=1e-5, rtol=1e-4)


def test_train_classifier_learns(data):
    model, acc = mc.train_classifier(data, epochs=3, batch=32)
    assert acc >= 0.9 and not model.training
    assert mc.accuracy(model, data.x_test, data.y_test) == acc


def test_load_classifier_caches_and_retrains(tmp_path, mnist_dir, monkeypatch):
    calls = []
    real = mc.train_classifier
    monkeypatch.setattr(mc, "train_classifier", lambda d, **kw: calls.append(1) or real(d, epochs=1, batch=64))
    cache = tmp_path / "cache"
    assert mc.classifier_info(cache) is None
    first = mc.load_classifier(mnist_dir=mnist_dir, cache_dir=cache)
    assert len(calls) == 1 and not first.training
    assert all(not p.requires_grad for p in first.parameters())
    info = mc.classifier_info(cache)
    assert info["path"] == str(cache / mc.FILE) and 0 <= info["test_accuracy"] <= 1
    assert [p.name for p in cache.iterdir()] == [mc.FILE]  # no temp file left
    second = mc.load_classifier(mnist_dir=mnist_dir, cache_dir=cache)
    assert len(calls) == 1
    x = mc.canvas(mnist_dir_data(mnist_dir).x_test[:8])
    torch.testing.assert_close(first(x), second(x))
    mc.load_classifier(mnist_dir=mnist_dir, cache_dir=cache, retrain=True)
    assert len(calls) == 2


def mnist_dir_data(folder) -> Mnist:
    with np.load(folder / "mnist.npz") as z:
        return Mnist(*(z[k] for k in Mnist._fields))


@pytest.mark.parametrize("content", [b"not a torch file", None])
def test_corrupt_cache_is_a_clear_error(tmp_path, content):
    path = tmp_path / mc.FILE
    if content is None:
        torch.save({"format": "something else"}, path)
    else:
        path.write_bytes(content)
    for call in (lambda: mc.load_classifier(cache_dir=tmp_path), lambda: mc.classifier_info(tmp_path)):
        with pytest.raises(SocietalError, match=r"corrupt MNIST classifier cache.*retrain") as e:
            call()
        assert "\n" not in str(e.value)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SOCIETAL_CACHE", str(tmp_path))
    assert mc.cache_path() == tmp_path / mc.FILE
    monkeypatch.delenv("SOCIETAL_CACHE")
    assert mc.cache_path().parent.name == "societal"
