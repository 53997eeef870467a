"""Compiling without waiting: ``torch.compile`` in a background thread while the run goes on eagerly.

Compiled, a PPO minibatch step of the tabular tasks is a few fused C++ kernels, about 6× faster than
eager; but compiling takes about 10 s with a cold cache (2–3 s once Inductor's on-disk cache holds the
kernels, as it does for every later run on the machine). ``Background`` compiles functions by
calling them once, in a thread, on copies of a real call's inputs that nobody else uses; the caller
keeps training with the eager functions and switches to the compiled ones when they are ready. The
switch happens at an update boundary, but at a time that depends on the machine, and compiled
kernels round differently from eager ones: a run that compiles is reproducible to float rounding,
not bit for bit (runs without compiling are).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable

import torch

OPTIONS = {
    # A lower threshold keeps Inductor from inlining a state's special functions (lgamma, digamma) into every
    # sample that reads them: computed once per state, as written.
    "realize_opcount_threshold": 8,
    # Trust the CPU's flags for its vector instructions instead of building and loading a test library for
    # each (8 of a cold start's 16 s); where the compiler cannot build them after all, training goes on eagerly.
    "cpp.vec_isa_ok": True,
    # Dynamo's guards already check every input's sizes and strides before a call; asserting them again costs
    # ≈ 5 of the ≈ 80 µs a minibatch step takes on Chain.
    "size_asserts": False,
}


class Background:
    """Compiles ``functions`` (name → function) in a thread, once ``start`` gives each one the arguments of a real
    call (copied: the functions update some of them in place)."""

    def __init__(self, functions: dict[str, Callable]) -> None:
        self.functions, self.compiled = functions, {}
        self.started = self.done = False

    def start(self, calls: dict[str, tuple]) -> None:
        examples = {name: tuple(map(_copy, args)) for name, args in calls.items()}

        def compile_all() -> None:
            try:  # torch.compile's first call also imports the compiler (seconds): in the thread too
                for name, args in examples.items():
                    self.compiled[name] = torch.compile(self.functions[name], options=OPTIONS)
                    self.compiled[name](*args)
                self.done = True
            except Exception as e:  # a run never fails for want of speed: it goes on eagerly
                warnings.warn(f"compiling the PPO update failed, training goes on without it: {e}", stacklevel=1)

        self.started = True
        self.thread = threading.Thread(target=compile_all, name="societal-compile", daemon=True)
        self.thread.start()

    def wait(self) -> None:
        """Until compiling has ended (benchmarks and tests that want the compiled functions from the start)."""
        self.thread.join()

    def result(self) -> dict[str, Callable] | None:
        """The compiled functions once all are compiled, else None."""
        return self.compiled if self.done else None


def _copy(x: object) -> object:
    """A tensor argument's copy, of the same kind (a parameter stays a parameter: the compiled function's guards
    check it); other arguments as they are."""
    if isinstance(x, torch.nn.Parameter):
        return torch.nn.Parameter(x.detach().clone())
    return x.clone() if isinstance(x, torch.Tensor) else x
