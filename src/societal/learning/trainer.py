"""Training in phases: build the run's parts, then repeat collect → update → evaluate → checkpoint.

A fresh run and a resumed one differ only in where the parts' state comes from: a resumed run loads
the last checkpoint (weights, optimisers, random streams, environments, counters) and goes on as the
uninterrupted run would have.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from societal.config import Config
from societal.errors import Diverged, EnvironmentFailed, SocietalError
from societal.evaluation import evaluate
from societal.learning.build import Parts, build
from societal.learning.choices import option_samples
from societal.learning.collecting import Collected
from societal.primitives import Options
from societal.storage import RunWriter, check_fits, checkpoint_file, load_weights

EXPLODED = 1e6  # a parameter this large, or a value loss this many times its first, is divergence in any sane run


class Trainer:
    """A run in progress: its parts, its counters and its folder."""

    def __init__(self, config: Config, out: Path, resume: dict | None = None) -> None:
        """A new run in ``out``, or (``resume``: the ``last.pt`` checkpoint of ``out``) the run there, going on."""
        self.config, self.out = config, out
        self.parts: Parts = build(config, transfer=resume is None)
        self.update, self.env_steps, self.auction_steps, self.wall_offset = 0, 0, 0, 0.0
        self.start = time.perf_counter()
        self.best, self.last_eval, self.last_checkpoint = -math.inf, -1, -1
        self.first_value_loss = math.nan
        if resume is not None:
            self.load_state_dict(resume)
        self.writer = RunWriter(out, config, None if resume is None else (self.update, self.env_steps))
        self.start = time.perf_counter() - self.wall_offset
        self.checkpoint_time = time.perf_counter()
        if resume is None:
            self.writer.metrics({"update": 0, "env_steps": 0, "auction_steps": 0, "wall_s": 0.0, **self.evaluate()})
            self.checkpoint()

    # ---- phases ----------------------------------------------------------------------------------
    def finished(self) -> bool:
        c = self.config
        return (self.env_steps >= c.steps or 0 < c.max_auction_steps <= self.auction_steps
                or 0 < c.max_wall_s <= self.wall_s)

    def collect(self) -> Collected:
        try:
            batch = self.parts.collector.gather(self.parts.steps_per_rollout)
        except SocietalError:
            raise
        except Exception as e:  # the environment (or an option's run) failed mid-episode
            raise EnvironmentFailed(f"{self.config.env} raised {type(e).__name__} during update {self.update + 1} "
                                    f"(after {self.env_steps} env steps): {str(e).splitlines()[0] if str(e) else ''}"
                                    ) from None
        self.check_finite("utility", batch.samples.target)
        return batch

    def learn(self, batch: Collected) -> dict[str, float]:
        p, c = self.parts, self.config
        lr_scale = c.lr_scale_at(self.update, self.env_steps)
        entropy = c.entropy_at(self.env_steps)
        stats = p.learner.update(batch.samples, lr_scale, entropy)
        self.check_finite("gradient", p.learner.nonfinite_gradient)
        self.check_finite("loss", torch.tensor([stats["value_loss"], stats["policy_entropy"]]))
        self.check_exploded(stats["value_loss"])
        self.check_finite("parameter", p.agent.theta, EXPLODED)
        if p.option_learner is not None:
            samples = option_samples(p.primitives, p.primitives.config.gae_lambda, batch.continuation)
            stats |= {f"option_{k}": v for k, v in p.option_learner.update(samples).items()}
            self.check_finite("option parameter", p.primitives.net.theta)
        return {"policy_lr": c.policy_lr * lr_scale, "entropy_coef": entropy, **stats}

    def evaluate(self) -> dict[str, float]:
        """Evaluation episodes with their own random stream; the best weights so far go to ``best.pt``."""
        p, c = self.parts, self.config
        self.last_eval = self.update
        result = evaluate(p.agent, c, c.eval_episodes, 10**6 + c.seed * 1000 + self.update, p.eval_primitives,
                          p.eval_env)
        if math.isfinite(result.mean) and result.mean >= self.best:
            self.best = result.mean
            self.writer.checkpoint("best", self.weights(result.mean))
        if p.bids is not None:
            self.writer.bids(p.bids.rows(p.agent, self.update, self.env_steps, result.wins))
        return {"eval_return_mean": result.mean, "eval_return_std": result.std,
                "eval_success_rate": result.terminated.float().mean().item()}

    def checkpoint(self) -> None:
        """``last.pt``: the weights and everything a resumed run needs."""
        self.writer.flush()
        self.writer.checkpoint("last", {**self.weights(math.nan), "resume": self.state_dict()})
        self.last_checkpoint, self.checkpoint_time = self.update, time.perf_counter()

    def step(self) -> dict:
        """One update: collect, learn, and evaluate and checkpoint when they are due. Returns its metrics row."""
        t0 = time.perf_counter()
        batch = self.collect()
        t1 = time.perf_counter()
        stats = self.learn(batch)
        t2 = time.perf_counter()
        self.update += 1
        self.env_steps += batch.env_steps
        self.auction_steps += self.parts.steps_per_rollout * self.config.num_envs
        if self.parts.bids is not None:
            self.parts.bids.visit(batch.samples.obs)
        row = {"update": self.update, "env_steps": self.env_steps, "auction_steps": self.auction_steps,
               "wall_s": self.wall_s, "collect_s": t1 - t0, "update_s": t2 - t1,
               "env_steps_per_s": batch.env_steps / (t2 - t0), "episodes": batch.episodes,
               **return_stats(batch.returns), **batch.market, **stats}
        if self.update % self.config.evaluation_period() == 0 or self.finished():
            row |= self.evaluate()
        self.writer.metrics(row)
        if self.checkpoint_due():
            self.checkpoint()
        return row

    def checkpoint_due(self) -> bool:
        c = self.config
        return (self.update % c.checkpoint_every == 0 or time.perf_counter() - self.checkpoint_time >= c.checkpoint_s
                or self.finished())

    def close(self, evaluation: bool = True) -> None:
        """Evaluate (unless not asked: a run stopped by a signal goes on later as if never stopped) and checkpoint
        where the last update did not, and close the run folder."""
        try:
            if evaluation and self.last_eval != self.update:  # stopped between evaluations
                self.writer.metrics({"update": self.update, "env_steps": self.env_steps,
                                     "auction_steps": self.auction_steps, "wall_s": self.wall_s, **self.evaluate()})
            if self.last_checkpoint != self.update:
                self.checkpoint()
        finally:
            self.writer.close()
            self.finish_compiling()

    def finish_compiling(self) -> None:
        """Wait for the compiles in progress: a process that exits while the compiler works aborts."""
        for part in (self.parts.learner, self.parts.option_learner, self.parts.collector):
            if part is not None:
                part.finish_compiling()

    # ---- state -----------------------------------------------------------------------------------
    @property
    def wall_s(self) -> float:
        return time.perf_counter() - self.start

    def check_finite(self, quantity: str, values: torch.Tensor, bound: float = math.inf) -> None:
        """Stop the run (``Diverged``) where ``values`` (a learner per row, or one flag per learner) is not finite,
        or not below ``bound`` in magnitude."""
        bad = ~(values.abs() < bound) if values.dtype.is_floating_point else values
        if bool(bad.any()):
            rows = bad.reshape(len(bad), -1).any(1).nonzero()[:, 0].tolist() if bad.dim() else [0]
            who = self.parts.learner_name(rows[0]) if quantity != "loss" else "the agent"
            what = "NaN or infinite" if math.isinf(bound) else f"NaN, infinite or beyond ±{bound:g}"
            raise Diverged(f"diverged: a {quantity} of {who} is {what} at update {self.update + 1}; "
                           f"{self.out} keeps its last good checkpoint (update {self.last_checkpoint})")

    def check_exploded(self, value_loss: float) -> None:
        """Stop the run where the value loss has grown a million-fold over its first (at least 0.01)."""
        if math.isnan(self.first_value_loss):
            self.first_value_loss = value_loss
        elif value_loss > EXPLODED * max(self.first_value_loss, 0.01):
            raise Diverged(f"diverged: the value loss is {value_loss:.3g} at update {self.update + 1}, more than "
                           f"{EXPLODED:g} times its first ({self.first_value_loss:.3g}); {self.out} keeps its last "
                           f"good checkpoint (update {self.last_checkpoint})")

    def weights(self, eval_return: float) -> dict:
        p = self.parts
        payload = {"config": self.config.to_dict(), "agent_spec": p.agent.spec, "agent": p.agent.state_dict(),
                   "update": self.update, "env_steps": self.env_steps, "eval_return": eval_return}
        if p.tuned:
            payload["options"] = p.primitives.net.state_dict()
        return payload

    def state_dict(self) -> dict:
        p = self.parts
        rng = {"torch": torch.get_rng_state(), "numpy": numpy_rng_state()}
        if p.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(p.device)
        return {"update": self.update, "env_steps": self.env_steps, "auction_steps": self.auction_steps,
                "wall_s": self.wall_s, "best": self.best, "last_eval": self.last_eval,
                "first_value_loss": self.first_value_loss,
                "ppo": p.learner.state_dict(), "collector": p.collector.state_dict(), "rng": rng,
                "option_ppo": p.option_learner.state_dict() if p.option_learner is not None else {},
                "visits": p.bids.visits.clone() if p.bids is not None else torch.zeros(0)}

    def load_state_dict(self, checkpoint: dict) -> None:
        """Go on from a ``last.pt`` checkpoint: its weights and its ``resume`` state (refused in one line, before
        anything is loaded or written, where they do not fit the parts this run builds)."""
        p, file = self.parts, checkpoint_file(self.out, "last")
        # entries older checkpoints lack, or that depend on the device (a resumed run may change it)
        check_fits(file, {"resume": self.state_dict()}, checkpoint, optional=("first_value_loss", "cuda", "stream"))
        load_weights(p.agent, checkpoint["agent"], file, "this run's agent")
        if checkpoint.get("options") is not None and isinstance(p.primitives, Options):
            load_weights(p.primitives.net, checkpoint["options"], file, "this run's options")
        state = checkpoint["resume"]
        self.update, self.env_steps, self.auction_steps = state["update"], state["env_steps"], state["auction_steps"]
        self.wall_offset, self.best, self.last_eval = state["wall_s"], state["best"], state["last_eval"]
        self.first_value_loss = state.get("first_value_loss", math.nan)  # older checkpoints: the next one counts
        self.last_checkpoint = self.update
        p.learner.load_state_dict(state["ppo"])
        if p.option_learner is not None:
            p.option_learner.load_state_dict(state["option_ppo"])
        if p.bids is not None:
            p.bids.visits.copy_(state["visits"])
        torch.set_rng_state(state["rng"]["torch"])
        set_numpy_rng_state(state["rng"]["numpy"])
        if "cuda" in state["rng"] and p.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], p.device)
        p.collector.load_state_dict(state["collector"])  # after the streams: a Gymnasium env draws fresh seeds


def return_stats(returns: torch.Tensor) -> dict:
    if len(returns) == 0:
        return {"return_mean": math.nan}
    stats = torch.stack([returns.mean(), returns.std(unbiased=False), returns.min(), returns.max()]).tolist()
    return dict(zip(("return_mean", "return_std", "return_min", "return_max"), stats))


def numpy_rng_state() -> dict:
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "has_gauss": has_gauss, "cached": cached}


def set_numpy_rng_state(state: dict) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["pos"], state["has_gauss"], state["cached"]))
