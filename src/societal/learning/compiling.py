"""Compiling without waiting: a step compiled by Inductor in a thread while the run goes on eagerly.

Compiled, a PPO minibatch step of the tabular tasks is a few fused C++ kernels, about 8× faster than eager, and
a society's auction step on a table one kernel, about 4× faster; but compiling the PPO step takes about 7 s with
a cold cache (about 1 s once Inductor's on-disk cache holds the kernels, as it does for every later run on the
machine). ``Background`` compiles a function in a thread, traced on copies of a real call's inputs that nobody
else uses; the caller keeps training with the eager function and switches to the compiled one when it is ready.
The switch happens at an update boundary, but at a time that depends on the machine, and compiled kernels round
differently from eager ones: a run that compiles is not reproducible (from the switch on, two runs of one seed
follow different trajectories); runs without compiling are, bit for bit.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import warnings
from collections.abc import Callable

import torch

from societal.learning import decompositions

OPTIONS = {
    # A lower threshold keeps Inductor from inlining a state's special functions (lgamma, digamma) into every
    # sample that reads them: computed once per state, as written.
    "realize_opcount_threshold": 8,
    # The caller checks the inputs' sizes and strides once per update (``Specialized.fits``); asserting them at
    # every call costs ≈ 5 µs of a minibatch step.
    "size_asserts": False,
    # A precompiled header takes 4.5 s to build, more than it saves the two kernels of a run (≈ 1.2 s each), and
    # 155 MB of the temporary folder for each set of compiler flags. (``torch.compile``'s many kernels gain from it.)
    "cpp_cache_precompile_headers": False,
}


class Specialized:
    """``fn`` traced on example arguments (with ``decompositions``' arithmetic for what Inductor computes slowly)
    and compiled by Inductor, for arguments of the same shapes, strides and dtypes only. ``torch.compile`` checks
    that with guards at every call (≈ 20 of the ≈ 75 µs a minibatch step took on Chain); a caller whose calls
    share one layout checks it once (``fits``) and otherwise runs eagerly. The graph goes to Inductor's own
    compiler without AOTAutograd, whose wrappers cost ≈ 8 µs a call and which it does not need (no gradients;
    the updates in place are functionalised here). It uses torch's internal entry points (``make_fx``,
    ``compile_fx_inner``, a fake-tensor mode and tracing context): where a torch release changes them, compiling
    fails and the run goes on eagerly."""

    def __init__(self, fn: Callable, args: tuple[torch.Tensor, ...], vector: bool = True) -> None:
        """``vector=False``: plain loops, for a function of small tensors (a few hundred numbers each), where Inductor's
        vector loops (and their tails) are slower and take a third longer to compile."""
        from torch._guards import TracingContext, tracing
        from torch._inductor import config
        from torch._inductor.compile_fx import compile_fx_inner

        self.layout = _layout(args)
        with config.patch({**OPTIONS, **settings(vector)}):
            graph, examples = _traced(fn, args)
            _compiler().join()
            with tracing(TracingContext(examples[0].fake_mode)):
                self.compiled = compile_fx_inner(graph, examples)

    def fits(self, args: tuple[torch.Tensor, ...]) -> bool:
        return _layout(args) == self.layout

    def __call__(self, *args: torch.Tensor) -> list[torch.Tensor]:
        return self.compiled(list(args))


class Background:
    """Compiles ``fn`` in a thread on a copy of the arguments of a real call (the function updates some of them in
    place), one ``Background`` at a time: the compiler is not made for two compiles at once in a process."""

    lock = threading.Lock()

    def __init__(self, fn: Callable, skip: int = 0, vector: bool = True) -> None:
        """``skip``: calls of ``ready`` before the one that starts compiling (what starts later compiles later);
        ``vector``: as ``Specialized``'s."""
        self.fn, self.skip, self.vector, self.compiled, self.thread = fn, skip, vector, None, None

    def ready(self, args: tuple[torch.Tensor, ...]) -> Specialized | None:
        """The compiled function once it is compiled, else None; starts compiling on ``args`` where it has not."""
        if self.thread is None and self.skip > 0:
            self.skip -= 1
        elif self.thread is None:
            _compiler()
            example = tuple(x.detach().clone() for x in args)
            self.thread = threading.Thread(target=self._compile, args=(example,), name="societal-compile", daemon=True)
            self.thread.start()
        return self.compiled

    def _compile(self, args: tuple[torch.Tensor, ...]) -> None:
        try:
            with Background.lock:
                self.compiled = Specialized(self.fn, args, self.vector)
        except Exception as e:  # a run never fails for want of speed: it goes on eagerly
            warnings.warn(f"compiling {self.fn.__qualname__} failed, training goes on without it: {e}", stacklevel=1)

    def wait(self) -> None:
        """Until compiling has ended, where it has started (a process that exits while the compiler works can
        abort)."""
        if self.thread is not None:
            self.thread.join()


def _layout(args: tuple[torch.Tensor, ...]) -> tuple:
    return tuple((x.shape, x.stride(), x.dtype, x.device) for x in args)


def settings(vector: bool = True) -> dict:
    """Inductor's settings for every compile of a run (here and ``torch.compile``'s): trust the CPU's flags for its
    vector instructions instead of building and loading a test library for each (1.2–1.5 s each with a cold cache)
    unless ``TORCHINDUCTOR_VEC_ISA_OK`` says otherwise (where the compiler cannot build them after all, training
    goes on eagerly); ``vector=False``: plain loops. Inductor's settings hold for the thread that sets them (a
    thread started without them tries each test library again)."""
    from torch._inductor import config

    options = {}
    if config.cpp.vec_isa_ok is None:
        options["cpp.vec_isa_ok"] = True
    if not vector:
        options["cpp.simdlen"] = 1  # no vector width is 1: plain loops
    return options


@functools.cache
def _compiler() -> threading.Thread:
    """Called once per process by the first ``Background`` to compile: imports Inductor (a second, which in a thread
    beside training takes twice as long and stalls the training) and starts a thread that has it try the CPU's vector
    extensions (AVX-512 bf16, VNNI, AMX: ≈ 1.5 s of waiting for the C++ compiler with a cold cache) while the rest is
    imported and the function traced."""
    from torch._inductor import config, cpu_vec_isa

    def probe() -> None:
        # without a working C++ compiler the compile itself says so, in one line, and the run goes on eagerly
        with config.patch(settings()), contextlib.suppress(Exception):
            cpu_vec_isa.valid_vec_isa_list()

    thread = threading.Thread(target=probe, name="societal-vec-isa", daemon=True)
    thread.start()
    import torch._inductor.compile_fx  # noqa: F401

    return thread


def _traced(fn: Callable, args: tuple[torch.Tensor, ...]) -> tuple[torch.fx.GraphModule, list[torch.Tensor]]:
    """``fn``'s graph without side effects (the updates in place become copies back at the end), and fake copies
    of ``args`` to compile it for."""
    from torch._inductor.decomposition import select_decomp_table
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    table = {**select_decomp_table(), **decompositions.DECOMPOSITIONS}
    traced = make_fx(lambda *a: fn(*a) or (), decomposition_table=table)(*args)
    graph = make_fx(torch.func.functionalize(traced))(*args)
    # With a shape environment, Inductor's on-disk cache serves later runs; real tensors are the graph's constants
    # (a table task's tables).
    fake = FakeTensorMode(allow_non_fake_inputs=True, shape_env=ShapeEnv())
    return graph, [fake.from_tensor(x, static_shapes=True) for x in args]
