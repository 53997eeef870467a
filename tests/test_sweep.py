"""Sweeps and experiments on Ray: a local Ray cluster of 2 CPUs, started once for these tests."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

import societal
from societal.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]  # one cluster: these tests share a worker
TINY = ["--steps", "8192", "--set", "eval_episodes=10", "--set", "eval_every=1"]


def ray_cli(*argv):
    return subprocess.run([sys.executable, "-m", "ray.scripts.scripts", *argv], capture_output=True, text=True,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"})


@pytest.fixture(scope="module")
def cluster():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = ray_cli("start", "--head", "--num-cpus", "2", "--node-ip-address", "127.0.0.1", "--port", str(port),
                      "--include-dashboard", "false", "--disable-usage-stats")
    assert started.returncode == 0, started.stderr
    yield re.search(r"ray start --address='([^']+)'", started.stdout + started.stderr).group(1)  # where Ray says it is
    ray_cli("stop")


def listening_ray_processes():
    out = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
    return {int(pid) for line in out.splitlines() if re.search("ray|gcs_server|raylet", line)
            for pid in re.findall(r"pid=(\d+)", line)}


def test_a_sweep_trains_every_setting_and_seed_in_its_own_run_folder(cluster, tmp_path, capsys):
    assert main(["sweep", "societal/Chain-v0", "--grid", "mechanism=ccv,bb", "--seeds", "2", *TINY,
                 "--out", str(tmp_path / "sweep"), "--address", cluster]) == 0
    out = capsys.readouterr().out
    assert out.count(" done") == 4
    for mechanism in ("ccv", "bb"):
        for seed in (0, 1):
            run = societal.load(tmp_path / "sweep" / f"mechanism={mechanism}" / f"seed{seed}")
            assert run.config.mechanism == mechanism and run.config.seed == seed
    assert main(["report", str(tmp_path / "sweep")]) == 0
    report = capsys.readouterr().out
    assert "median of 2" in report and (tmp_path / "sweep" / "returns.png").is_file()


def test_a_failing_run_is_reported_and_the_others_finish(cluster, tmp_path, capsys):
    table = societal.sweep("societal/Chain-v0", {"policy_lr": [4e-5, 10.0]}, out=tmp_path / "sweep", steps=8192,
                           eval_episodes=10, address=cluster)
    outcome = dict(zip(table.run.map(lambda r: r.split("/")[-2]), table.outcome))
    assert outcome["policy_lr=4e-05"] == "done"
    assert outcome["policy_lr=10.0"].startswith("failed:") and "diverged" in outcome["policy_lr=10.0"]


def test_an_interrupted_sweep_resumes_without_rerunning_finished_runs(cluster, tmp_path):
    args = ["sweep", "societal/Chain-v0", "--grid", "steps=8192,400000", "--set", "eval_episodes=10",
            "--out", str(tmp_path / "sweep"), "--address", cluster]
    sweep = subprocess.Popen([sys.executable, "-m", "societal", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    short, long = (tmp_path / "sweep" / f"steps={n}" / "seed0" for n in (8192, 400000))
    while not ((short / "plots" / "returns.png").is_file() and (long / "checkpoints" / "last.pt").is_file()):
        assert sweep.poll() is None, sweep.communicate()
        time.sleep(0.2)
    time.sleep(1.0)
    sweep.send_signal(signal.SIGINT)
    sweep.communicate(timeout=300)
    finished = (short / "metrics.csv").read_text()
    assert len(pd.read_csv(long / "metrics.csv")) < 99  # cut short
    assert main([*args, "--resume"]) == 0
    assert (short / "metrics.csv").read_text() == finished  # not run again
    assert pd.read_csv(long / "metrics.csv").env_steps.iloc[-1] >= 400000


def test_experiments_run_their_stages_on_ray_after_the_runs_they_read(cluster, tmp_path, capsys):
    assert main(["experiments", "tworooms", "--scale", "0.0002", "--for-real", "--root", str(tmp_path),
                 "--address", cluster, "--only", "option-red", "option-green", "option-blue", "green-society",
                 "blue-society"]) == 0
    out = capsys.readouterr().out
    assert out.count(" done") == 5
    blue = societal.load(tmp_path / "tworooms" / "blue-society" / "seed0")
    assert blue.config.init_from == str(tmp_path / "tworooms" / "green-society" / "seed0")


def test_a_private_ray_instance_leaves_nothing_listening(tmp_path):
    before = listening_ray_processes()
    table = societal.sweep("societal/Bandit-v0", {}, out=tmp_path / "sweep", steps=4096, eval_episodes=10, cpus=1)
    assert list(table.outcome) == ["done"]
    time.sleep(2)
    assert listening_ray_processes() <= before
