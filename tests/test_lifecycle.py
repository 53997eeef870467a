"""Runs that survive: resume after SIGKILL, SIGINT and SIGTERM; a full disk; a failing environment; divergence."""

import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import matplotlib
import pandas as pd
import pytest
import torch

import societal
from societal.cli import main
from societal.errors import Diverged, EnvironmentFailed, Stopped

TIMING = ("wall_s", "collect_s", "update_s", "env_steps_per_s")


def same_metrics(a, b):
    a, b = pd.read_csv(a / "metrics.csv"), pd.read_csv(b / "metrics.csv")
    columns = [c for c in a.columns if c not in TIMING]
    pd.testing.assert_frame_equal(a[columns], b[columns])


def societal_cli(*argv):
    return subprocess.Popen([sys.executable, "-m", "societal", *argv, "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def updates_in(folder):
    try:
        return len(pd.read_csv(folder / "metrics.csv"))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


def kill_and_resume(args, folder, after_rows, rng):
    """Start ``societal train args``, SIGKILL it once it has written ``after_rows`` rows (plus a random delay),
    resume it until it ends. Returns the exit status of the resumed run."""
    process = societal_cli(*args, "--out", str(folder))
    while updates_in(folder) < after_rows and process.poll() is None:
        time.sleep(0.05)
    time.sleep(rng.uniform(0, 0.5))
    process.kill()
    process.wait()
    resumed = societal_cli("train", "--resume", str(folder))
    _, err = resumed.communicate(timeout=300)
    return resumed.returncode, err


@pytest.mark.slow
@pytest.mark.parametrize("task", [
    ["societal/Chain-v0", "--steps", "300000"],
    ["societal/Bandit-v0", "--dropout", "--steps", "300000"],
    ["societal/RandomMDP-v0", "--preset", "general", "--set", "explore=0.1", "--steps", "300000"],
])
def test_a_run_killed_at_a_random_moment_resumes_to_the_same_metrics(task, tmp_path):
    common = ["train", *task, "--set", "eval_every=7", "--set", "checkpoint_every=3", "--set", "eval_episodes=20"]
    assert main([*common, "--out", str(tmp_path / "whole"), "--quiet"]) == 0
    code, err = kill_and_resume(common, tmp_path / "killed", random.Random(str(task)).randint(5, 40),
                                random.Random(0))
    assert code == 0, err
    same_metrics(tmp_path / "whole", tmp_path / "killed")
    assert not list((tmp_path / "killed").rglob("*.tmp"))


@pytest.mark.slow
def test_a_society_over_options_killed_resumes_to_the_same_metrics(tmp_path):
    tiny = ["--num-envs", "8", "--set", "auction_steps_per_update=64", "--set", "minibatch=32",
            "--set", "eval_episodes=4", "--set", "eval_every=3", "--quiet"]
    options = []
    for goal in ("Red", "Green", "Blue"):
        options.append(str(tmp_path / goal))
        assert main(["train", f"societal/{goal}GoalTwoRooms-v0", "--agent", "monolithic", "--network", "minigrid_cnn",
                     "--steps", "200", "--out", options[-1], *tiny]) == 0
    common = ["train", "societal/GreenTwoRooms-v0", "--options", *options, "--network", "minigrid_cnn",
              "--max-auction-steps", "2000", "--steps", "1000000", "--set", "checkpoint_every=2", *tiny[:-1]]
    assert main([*common, "--out", str(tmp_path / "whole"), "--quiet"]) == 0
    code, err = kill_and_resume(common, tmp_path / "killed", 12, random.Random(1))
    assert code == 0, err
    same_metrics(tmp_path / "whole", tmp_path / "killed")


@pytest.mark.slow
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_finish_the_update_save_and_say_how_to_resume(number, tmp_path):
    args = ["train", "societal/Chain-v0", "--steps", "300000", "--set", "eval_every=7"]
    assert main([*args, "--out", str(tmp_path / "whole"), "--quiet"]) == 0
    process = societal_cli(*args, "--out", str(tmp_path / "stopped"))
    while updates_in(tmp_path / "stopped") < 20:
        time.sleep(0.05)
    process.send_signal(number)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + number
    assert err.strip().splitlines()[-1].endswith(f"resume with: societal train --resume {tmp_path / 'stopped'}")
    assert (tmp_path / "stopped" / "plots" / "returns.png").is_file()
    assert main(["train", "--resume", str(tmp_path / "stopped"), "--quiet"]) == 0
    same_metrics(tmp_path / "whole", tmp_path / "stopped")


def test_a_stopped_python_run_raises_stopped_after_saving(tmp_path):
    def interrupt(row):
        if row["update"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Stopped, match="stopped by SIGTERM after update 3") as caught:
        societal.train("societal/Chain-v0", steps=40_000, out=tmp_path / "run", progress=False, callback=interrupt)
    assert caught.value.exit_status == 143
    assert societal.load(tmp_path / "run", "last").update == 3
    run = societal.train(resume=tmp_path / "run", progress=False)
    assert run.update == 10 and list(run.metrics["update"]) == list(range(11))


def test_a_full_disk_is_one_line_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    import societal.storage as storage

    saved, real_save = [], torch.save

    def fill_up(payload, file):
        if len(saved) >= 4:  # the disk is full from the fifth checkpoint on
            with open(file, "wb") as f:
                f.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        saved.append(file)
        real_save(payload, file)

    monkeypatch.setattr(storage.torch, "save", fill_up)
    code = main(["train", "societal/Chain-v0", "--steps", "200000", "--set", "checkpoint_every=2",
                 "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "No space left on device" in err
    monkeypatch.setattr(storage.torch, "save", real_save)
    assert not list((tmp_path / "run").rglob("*.tmp"))
    last = societal.load(tmp_path / "run", "last")
    assert last.update in (2, 4)  # the last checkpoint written whole
    assert main(["train", "--resume", str(tmp_path / "run"), "--quiet"]) == 0


class Breaks(gym.Env):
    """A task whose environment raises on its 30th step (each copy counts its own)."""

    observation_space, action_space = gym.spaces.Discrete(2), gym.spaces.Discrete(2)

    def __init__(self):
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return 0, {}

    def step(self, action):
        self.steps += 1
        if self.steps == 30:
            raise RuntimeError("sensor unplugged")
        return 0, 0.0, False, False, {}


def test_an_environment_that_raises_is_one_line_and_keeps_the_checkpoint(tmp_path):
    gym.register("test/Breaks-v0", entry_point=Breaks, max_episode_steps=10)
    with pytest.raises(EnvironmentFailed, match="test/Breaks-v0 raised RuntimeError during update 2 "
                                                r"\(after 64 env steps\): sensor unplugged"):
        societal.train("test/Breaks-v0", num_envs=4, auction_steps_per_update=64, steps=10_000,
                       checkpoint_every=1, eval_episodes=2, out=tmp_path / "run", progress=False)
    assert societal.load(tmp_path / "run", "last").update == 1


def test_divergence_stops_within_one_update_with_status_3(tmp_path, capsys):
    code = main(["train", "societal/Chain-v0", "--set", "policy_lr=1", "--steps", "100000",
                 "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 3 and len(err.splitlines()) == 1
    assert "diverged: a gradient of learner" in err and "at update 1" in err
    assert societal.load(tmp_path / "run", "last").update == 0  # the last good one
    best = societal.load(tmp_path / "run", "best")
    assert torch.isfinite(best.agent.theta).all()
    with pytest.raises(Diverged):
        societal.train("societal/Chain-v0", policy_lr=1.0, steps=100_000, out=tmp_path / "api", progress=False)


def test_a_parameter_or_a_value_loss_that_explodes_is_divergence(tmp_path):
    """Finite is not enough: a weight beyond ±10⁶, or a value loss a million times its first, stops the run."""
    from societal.learning.trainer import Trainer

    trainer = Trainer(societal.Config(steps=1, eval_episodes=2), tmp_path / "run")
    trainer.check_exploded(0.5)  # the first value loss sets the scale
    trainer.check_exploded(4e5)
    with pytest.raises(Diverged, match=r"the value loss is 6e\+05 at update 1, more than 1e\+06 times its first"):
        trainer.check_exploded(6e5)
    trainer.check_finite("parameter", torch.tensor([[1.0, -9e5]]), 1e6)
    with pytest.raises(Diverged, match=r"a parameter of learner 1 .* is NaN, infinite or beyond ±1e\+06"):
        trainer.check_finite("parameter", torch.tensor([[1.0, 2.0], [3.0, -2e6]]), 1e6)
    trainer.writer.close()


def test_training_leaves_the_users_matplotlib_backend_alone(tmp_path):
    matplotlib.use("svg")
    societal.train("societal/Chain-v0", steps=1, eval_episodes=2, out=tmp_path / "run", progress=False)
    assert matplotlib.get_backend() == "svg" and (tmp_path / "run" / "plots" / "bids.png").is_file()


def test_without_a_terminal_progress_is_a_line_every_few_seconds(tmp_path, monkeypatch, capsys):
    from societal.learning.loop import Progress

    class Trainer:
        out, env_steps, config = tmp_path / "run", 0, societal.Config(steps=10_000)

    bar = Progress(Trainer(), enabled=True, every_s=0.0)  # pytest's stderr is not a terminal
    row = {"env_steps": 4096, "env_steps_per_s": 50_000.0, "return_mean": 0.5}
    bar.show({**row, "eval_return_mean": 0.8})
    bar.show({**row, "env_steps": 8192})
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"{tmp_path / 'run'}: 4,096 / 10,000 env steps, 50,000 env steps/s, evaluation return 0.8 at "
                     "4,096 env steps", f"{tmp_path / 'run'}: 8,192 / 10,000 env steps, 50,000 env steps/s, "
                     "evaluation return 0.8 at 4,096 env steps"]


def test_run_names_do_not_collide_even_within_one_second(tmp_path, monkeypatch):
    from datetime import datetime

    import societal.learning.loop as loop

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 1, 1, 12, 0, 0)

    monkeypatch.setattr(loop, "datetime", Frozen)
    monkeypatch.chdir(tmp_path)
    first = societal.train("societal/Chain-v0", steps=1, eval_episodes=2, progress=False)
    second = societal.train("societal/Chain-v0", steps=1, eval_episodes=2, progress=False)
    assert first.path != second.path and first.path.parent == second.path.parent == Path("runs")
    assert first.path.name.startswith("societal-Chain-v0_ccv_seed0_20260101-120000_")


def test_the_training_return_does_not_favour_short_episodes(tmp_path):
    run = societal.train("societal/Chain-v0", steps=20_000, eval_episodes=2, out=tmp_path / "run", progress=False)
    first = run.metrics.set_index("update").return_mean
    assert pd.isna(first[1])  # after 16 steps of each environment, only the fastest episodes have ended
    assert first[2] < 0.5  # once every environment has completed one, their mean: mostly episodes cut at 20 steps


def test_a_checkpoint_write_cut_short_leaves_the_last_one_and_is_cleaned_up(tmp_path):
    societal.train("societal/Chain-v0", steps=40_000, checkpoint_every=4, out=tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes()
    (tmp_path / "run" / "checkpoints" / ".last.pt.tmp").write_bytes(before[:100])  # SIGKILL inside torch.save
    assert societal.load(tmp_path / "run", "last").update == 10
    run = societal.train(resume=tmp_path / "run", steps=60_000, progress=False)
    assert run.update == 15 and not list((tmp_path / "run").rglob("*.tmp"))


def test_resuming_a_finished_run_leaves_its_files_byte_for_byte(tmp_path):
    societal.train("societal/Chain-v0", steps=20_000, out=tmp_path / "run", progress=False)
    before = {f: (tmp_path / "run" / f).read_bytes() for f in ("metrics.csv", "bids.csv")}
    run = societal.train(resume=tmp_path / "run", progress=False)
    assert run.update == 5 and all((tmp_path / "run" / f).read_bytes() == b for f, b in before.items())


def test_a_run_folder_has_one_writer(tmp_path):
    """A second process that would write a run being trained is refused with the holder's pid; once the holder
    has stopped, the run resumes."""
    folder = tmp_path / "run"
    first = societal_cli("train", "societal/Chain-v0", "--steps", "100000000", "--out", str(folder))
    while updates_in(folder) < 2 and first.poll() is None:
        time.sleep(0.05)
    second = subprocess.run([sys.executable, "-m", "societal", "train", "--resume", str(folder), "--quiet"],
                            capture_output=True, text=True, timeout=120)
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=120)
    assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1
    assert f"is being written by process {first.pid}" in second.stderr
    stopped_at = updates_in(folder) - 1  # rows of updates 0 … stopped_at
    resumed = subprocess.run([sys.executable, "-m", "societal", "train", "--resume", str(folder), "--steps",
                              str(4096 * (stopped_at + 2)), "--quiet"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert list(pd.read_csv(folder / "metrics.csv")["update"]) == list(range(stopped_at + 3))  # no gap, no repeat


def test_a_real_file_size_limit_is_one_line_and_the_run_resumes(tmp_path):
    """``ulimit -f``: the kernel refuses to grow a file (EFBIG), as a full disk would; TensorBoard's writer thread
    and ``torch.save`` report it differently from ``open().write``, and each must end in one line, exit 1."""
    folder, small = tmp_path / "run", ["--num-envs", "16", "--set", "auction_steps_per_update=256",
                                       "--set", "minibatch=64", "--no-compile", "--quiet"]
    command = [sys.executable, "-m", "societal", "train", "societal/Chain-v0", "--steps", "3000000", *small,
               "--out", str(folder)]
    limited = subprocess.run(["bash", "-c", 'ulimit -f 40 && exec "$@"', "bash", *command], capture_output=True,
                             text=True, timeout=600)
    assert limited.returncode == 1 and len(limited.stderr.strip().splitlines()) == 1, limited.stderr
    assert "cannot write" in limited.stderr and "File too large" in limited.stderr
    last = societal.load(folder, "last").update
    resumed = subprocess.run([sys.executable, "-m", "societal", "train", "--resume", str(folder), "--steps",
                              str(256 * (last + 3)), "--quiet"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert list(pd.read_csv(folder / "metrics.csv")["update"]) == list(range(last + 4))
