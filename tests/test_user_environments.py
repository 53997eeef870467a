"""A user's own environment from the command line: ``--import MODULE`` for train, eval and resume; the run
records the module and imports it again later from installed code only, never from beside the run.

Each command runs in its own process, as a user's would: a module once imported stays imported in a process."""

import json
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

MODULE = textwrap.dedent('''
    """A corridor: move right (action 1) from cell 0 to the last cell, which pays 1; 60 steps at most."""
    import pathlib, os

    import gymnasium as gym
    import numpy as np

    pathlib.Path(__file__).with_name(f"imported-{os.getpid()}").touch()  # shows where this code ran


    class Corridor(gym.Env):
        def __init__(self, length=8):
            self.length = length
            self.observation_space = gym.spaces.Discrete(length)
            self.action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.cell = 0
            return self.cell, {}

        def step(self, action):
            self.cell = max(0, self.cell + (1 if action == 1 else -1))
            done = self.cell == self.length - 1
            return self.cell, float(done), done, False, {}


    gym.register("my/Corridor-v0", entry_point=Corridor, max_episode_steps=60)
''')


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A folder with the user's module, and a run trained on its environment from there (200 k env steps)."""
    root = tmp_path_factory.mktemp("user")
    (root / "mods").mkdir()
    (root / "mods" / "corridor_envs.py").write_text(MODULE)
    done = societal(["train", "my/Corridor-v0", "--import", "corridor_envs", "--steps", "200000", "--quiet",
                     "--set", "eval_episodes=50", "--out", str(root / "run")], cwd=root / "mods")
    assert done.returncode == 0, done.stderr
    return root


def societal(argv, cwd, pythonpath=None):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, "-m", "societal", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_run_records_the_module_that_registers_its_environment(home):
    config = json.loads((home / "run" / "config.json").read_text())
    assert config["env"] == "my/Corridor-v0" and config["imports"] == ["corridor_envs"]


def test_without_the_module_the_environment_is_unknown_and_the_message_says_how(home, tmp_path):
    done = societal(["train", "my/Corridor-v0", "--out", str(tmp_path / "run")], cwd=home / "mods")
    assert done.returncode == 2 and "unknown environment 'my/Corridor-v0'" in done.stderr
    assert "--import MODULE" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_eval_and_resume_import_the_recorded_module_from_installed_code(home, tmp_path):
    done = societal(["eval", str(home / "run"), "--episodes", "20"], cwd=tmp_path, pythonpath=home / "mods")
    assert done.returncode == 0, done.stderr
    assert "no exact assessment: my/Corridor-v0 has no transition table" in done.stdout
    resumed = societal(["train", "--resume", str(home / "run"), "--steps", "210000", "--quiet"], cwd=tmp_path,
                       pythonpath=home / "mods")
    assert resumed.returncode == 0, resumed.stderr
    assert pd.read_csv(home / "run" / "metrics.csv").env_steps.max() >= 210000


def test_a_module_beside_the_run_is_never_imported_unless_named_again(home):
    before = set((home / "mods").glob("imported-*"))
    planted = societal(["eval", str(home / "run")], cwd=home / "mods")  # the module lies in the current folder
    assert planted.returncode == 2 and len(planted.stderr.strip().splitlines()) == 1
    assert "needs module 'corridor_envs'" in planted.stderr and "--import corridor_envs" in planted.stderr
    assert set((home / "mods").glob("imported-*")) == before, "the planted module ran"
    named = societal(["eval", str(home / "run"), "--import", "corridor_envs", "--episodes", "10"], cwd=home / "mods")
    assert named.returncode == 0, named.stderr


def test_a_short_runs_best_checkpoint_is_a_trained_one(home, tmp_path):
    """200 k env steps are 49 updates: evaluated often enough that training, which helps here, is chosen."""
    metrics = pd.read_csv(home / "run" / "metrics.csv")
    evaluations = metrics.dropna(subset=["eval_return_mean"])
    assert len(evaluations) >= 10
    assert evaluations.eval_return_mean.iloc[-1] > evaluations.eval_return_mean.iloc[0]  # training helped
    done = societal(["eval", str(home / "run"), "--episodes", "20"], cwd=tmp_path, pythonpath=home / "mods")
    assert f"the last checkpoint (update {metrics['update'].max()}," in done.stdout  # the default: the trained one
    best = societal(["eval", str(home / "run"), "--episodes", "20", "--checkpoint", "best"], cwd=tmp_path,
                    pythonpath=home / "mods")
    assert "the best checkpoint: update 0," not in best.stdout and "the best checkpoint: update" in best.stdout
