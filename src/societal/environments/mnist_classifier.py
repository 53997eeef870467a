"""The MNIST CNN of the 2020 code and the frozen digit classifier that judges MentalRotation.

The classifier is trained once on centred 64×64 training digits, cached in ``$SOCIETAL_CACHE`` (default
``~/.cache/societal``) as ``mnist_classifier.pt`` and reused; ``load_classifier(retrain=True)`` retrains it.
Recipe (faster than the original's Adadelta lr 1.0, StepLR γ 0.7, 14 epochs, batch 64): Adam lr 1e-3 with
StepLR γ 0.7 per epoch, 4 epochs, batch 128, cross-entropy (the original's NLL on log-softmax outputs).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from societal.environments.mnist_data import Mnist, load_mnist
from societal.errors import SocietalError

OFFSET = (64 - 28 + 1) // 2  # 18, the original's canvas offset
FORMAT = "societal-mnist-classifier-v1"
FILE = "mnist_classifier.pt"
EPOCHS = 4
_RETRAIN = "delete it or retrain it (societal mnist-classifier --retrain)"


def canvas(digits: np.ndarray | Tensor) -> Tensor:
    """uint8 digits ``[n, 28, 28]`` → float32 ``[n, 1, 64, 64]`` in [0, 1], pasted at row/col offset 18."""
    x = digits if isinstance(digits, Tensor) else torch.tensor(np.asarray(digits))  # copies: arrays may be read-only
    out = torch.zeros(len(x), 1, 64, 64, device=x.device)
    out[:, 0, OFFSET:OFFSET + 28, OFFSET:OFFSET + 28] = x.float() / 255
    return out


def mnist_cnn(out: int) -> nn.Module:
    """The original's ``MNIST_CNN`` (DCGAN discriminator, ndf = 8, no conv bias): ``[B, 1, 64, 64]`` → ``[B, out]``.

    GroupNorm (4 groups) replaces the original's BatchNorm on purpose: it keeps no batch
    statistics, so rollout and update see the same function and the module has no buffers (``StackedModule``).
    Layer indices match the original's ``network.{0,2,3,5,6,8,9,11}``.
    """
    layers: list[nn.Module] = [nn.Conv2d(1, 8, 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
    for c in (8, 16, 32):
        layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.GroupNorm(4, 2 * c), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Conv2d(64, out, 4, 1, 0, bias=False), nn.Flatten())


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray | Tensor, y: np.ndarray | Tensor, batch: int = 1000) -> float:
    """Fraction of centred digits ``x`` (uint8 ``[n, 28, 28]``) that ``model`` labels ``y``."""
    device = next(model.parameters()).device
    y = torch.tensor(np.asarray(y))
    hits = sum(int((model(canvas(x[i:i + batch]).to(device)).argmax(1).cpu() == y[i:i + batch]).sum())
               for i in range(0, len(y), batch))
    return hits / max(len(y), 1)


def train_classifier(data: Mnist, epochs: int = EPOCHS, seed: int = 0, device: str = "cpu", batch: int = 128,
                     lr: float = 1e-3, log: Callable[[str], None] | None = None) -> tuple[nn.Module, float]:
    """Train ``mnist_cnn(10)`` on centred training digits; ``(model in eval mode, accuracy on centred test digits)``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = mnist_cnn(10).to(device, memory_format=torch.channels_last)  # channels_last: about 2× faster on CPU
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.7)
    x, y = torch.tensor(np.asarray(data.x_train)), torch.tensor(np.asarray(data.y_train))  # uint8 28×28 kept
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        start, total = time.perf_counter(), 0.0
        for idx in torch.randperm(len(y), generator=gen).split(batch):
            xb = canvas(x[idx]).to(device, memory_format=torch.channels_last)
            loss = nn.functional.cross_entropy(model(xb), y[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        if log:
            log(f"epoch {epoch + 1}/{epochs}: loss {total / len(y):.4f} ({time.perf_counter() - start:.0f} s)")
    model = model.to(memory_format=torch.contiguous_format).eval()
    return model, accuracy(model, data.x_test, data.y_test)


def cache_path(cache_dir: str | Path | None = None) -> Path:
    """The classifier's cache file: ``cache_dir``, else ``$SOCIETAL_CACHE``, else ``~/.cache/societal``."""
    return Path(cache_dir or os.environ.get("SOCIETAL_CACHE") or "~/.cache/societal").expanduser() / FILE


def _read(path: Path) -> dict:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        float(blob["test_accuracy"])
        mnist_cnn(10).load_state_dict(blob["state_dict"])
    except Exception as e:
        raise SocietalError(f"corrupt MNIST classifier cache {path} ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}); {_RETRAIN}") from e
    return blob


def classifier_info(cache_dir: str | Path | None = None) -> dict | None:
    """``{path, test_accuracy, epochs, train_seconds}`` of the cached classifier, or ``None`` if none is cached."""
    if not (path := cache_path(cache_dir)).is_file():
        return None
    blob = _read(path)
    return {"path": str(path), **{k: blob.get(k) for k in ("test_accuracy", "epochs", "train_seconds")}}


def load_classifier(device: str = "cpu", retrain: bool = False, mnist_dir: str | Path | None = None,
                    cache_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> nn.Module:
    """The frozen classifier (eval mode, no gradients) from the cache; trained and cached if absent or ``retrain``."""
    path, model, start = cache_path(cache_dir), mnist_cnn(10), time.perf_counter()
    if retrain or not path.is_file():
        trained, acc = train_classifier(load_mnist(mnist_dir), device=device, log=log)
        blob = {"format": FORMAT, "state_dict": {k: v.cpu() for k, v in trained.state_dict().items()},
                "test_accuracy": acc, "epochs": EPOCHS, "train_seconds": round(time.perf_counter() - start, 1)}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=FILE + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(blob, f)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        if log:
            log(f"MNIST classifier: test accuracy {acc:.4f}, cached in {path}")
    else:
        blob = _read(path)
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval().requires_grad_(False)
