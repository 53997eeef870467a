"""Compiling without waiting: the PPO step compiled by Inductor in a thread while the run goes on eagerly.

Compiled, a PPO minibatch step of the tabular tasks is a few fused C++ kernels, about 8× faster than
eager; but compiling takes about 8 s with a cold cache (2–3 s once Inductor's on-disk cache holds the
kernels, as it does for every later run on the machine). ``Background`` compiles a function in a
thread, traced on copies of a real call's inputs that nobody else uses; the caller keeps training
with the eager function and switches to the compiled one when it is ready. The switch happens at an
update boundary, but at a time that depends on the machine, and compiled kernels round differently
from eager ones: a run that compiles is reproducible to float rounding, not bit for bit (runs without
compiling are).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable

import torch

from societal.learning import decompositions

OPTIONS = {
    # A lower threshold keeps Inductor from inlining a state's special functions (lgamma, digamma) into every
    # sample that reads them: computed once per state, as written.
    "realize_opcount_threshold": 8,
    # Trust the CPU's flags for its vector instructions instead of building and loading a test library for
    # each (8 of a cold start's 16 s); where the compiler cannot build them after all, training goes on eagerly.
    "cpp.vec_isa_ok": True,
    # The caller checks the inputs' sizes and strides once per update (``Specialized.fits``); asserting them at
    # every call costs ≈ 5 µs of a minibatch step.
    "size_asserts": False,
}


class Specialized:
    """``fn`` traced on example arguments (with ``decompositions``' arithmetic for what Inductor computes slowly)
    and compiled by Inductor, for arguments of the same shapes, strides and dtypes only. ``torch.compile`` checks
    that with guards at every call (≈ 20 of the ≈ 75 µs a minibatch step took on Chain); a caller whose calls
    share one layout checks it once (``fits``) and otherwise runs eagerly. It uses torch's internal entry points
    (``make_fx``, ``torch._inductor.compile``, a fake-tensor mode): where a torch release changes them, compiling
    fails and the run goes on eagerly."""

    def __init__(self, fn: Callable, args: tuple[torch.Tensor, ...]) -> None:
        import torch._inductor  # here: the compiler's modules take a second to import
        from torch._subclasses.fake_tensor import FakeTensorMode
        from torch.fx.experimental.proxy_tensor import make_fx
        from torch.fx.experimental.symbolic_shapes import ShapeEnv

        self.layout = _layout(args)
        graph = make_fx(lambda *a: fn(*a), decomposition_table=decompositions.DECOMPOSITIONS)(*args)
        fake = FakeTensorMode(shape_env=ShapeEnv())  # with one, Inductor's on-disk caches serve later runs
        examples = [fake.from_tensor(x, static_shapes=True) for x in args]
        self.compiled = torch._inductor.compile(graph, examples, options=OPTIONS)

    def fits(self, args: tuple[torch.Tensor, ...]) -> bool:
        return _layout(args) == self.layout

    def __call__(self, *args: torch.Tensor) -> object:
        return self.compiled(*args)


class Background:
    """Compiles ``fn`` in a thread, once ``start`` gives it the arguments of a real call (copied: the function
    updates some of them in place)."""

    def __init__(self, fn: Callable) -> None:
        self.fn, self.compiled, self.thread = fn, None, None

    @property
    def started(self) -> bool:
        return self.thread is not None

    def start(self, args: tuple[torch.Tensor, ...]) -> None:
        example = tuple(x.detach().clone() for x in args)

        def compile() -> None:
            try:
                self.compiled = Specialized(self.fn, example)
            except Exception as e:  # a run never fails for want of speed: it goes on eagerly
                warnings.warn(f"compiling the PPO update failed, training goes on without it: {e}", stacklevel=1)

        self.thread = threading.Thread(target=compile, name="societal-compile", daemon=True)
        self.thread.start()

    def wait(self) -> None:
        """Until compiling has ended (at a run's end; benchmarks and tests that want the compiled function)."""
        self.thread.join()

    def result(self) -> Specialized | None:
        """The compiled function once it is compiled, else None."""
        return self.compiled


def _layout(args: tuple[torch.Tensor, ...]) -> tuple:
    return tuple((x.shape, x.stride(), x.dtype, x.device) for x in args)
