"""Sweeps and experiments on Ray: a local Ray cluster of 2 CPUs, started once for these tests."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

import societal
from societal.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]  # one cluster: these tests share a worker
TINY = ["--steps", "8192", "--set", "eval_episodes=10", "--set", "eval_every=1"]


ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}


@pytest.fixture(scope="module")
def cluster():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--num-cpus", "2",
                              "--node-ip-address", "127.0.0.1", "--port", str(port), "--include-dashboard", "false",
                              "--disable-usage-stats"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=ENV, start_new_session=True)
    out = start.communicate(timeout=120)[0]
    assert start.returncode == 0, out
    yield re.search(r"ray start --address='([^']+)'", out).group(1)  # where Ray says it is
    end_session(start.pid)  # not `ray stop`: it would stop every Ray instance on the machine


def end_session(sid):
    """SIGTERM, then SIGKILL after 10 s, to every process of session ``sid``."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 2.0)):
        pids = subprocess.run(["pgrep", "-s", str(sid)], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), sig)
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline and subprocess.run(["pgrep", "-s", str(sid)]).returncode == 0:
            time.sleep(0.2)


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


def test_a_private_ray_instance_leaves_no_process_behind(tmp_path):
    sweep = subprocess.Popen([sys.executable, "-m", "societal", "sweep", "societal/Bandit-v0", "--steps", "4096",
                              "--set", "eval_episodes=10", "--cpus", "1", "--out", str(tmp_path / "sweep")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0 and out.rstrip().endswith("done"), err
    time.sleep(2)
    assert subprocess.run(["pgrep", "-s", str(sweep.pid)], capture_output=True).stdout == b""


def test_sigterm_stops_an_experiment_on_ray_and_leaves_no_process_behind(tmp_path):
    driver = subprocess.Popen([sys.executable, "-m", "societal", "experiments", "chain", "--for-real", "--scale", "0.1",
                               "--cpus", "2", "--root", str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    folders = [tmp_path / "chain" / c / "seed0" for c in ("cloned-ccv", "cloned-bb")]
    deadline = time.monotonic() + 240
    while not all((f / "checkpoints" / "last.pt").is_file() for f in folders):
        assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
        time.sleep(0.2)
    driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 143 and "stopped by SIGTERM" in err and "--resume" in err
    time.sleep(2)
    left = subprocess.run(["pgrep", "-s", str(driver.pid)], capture_output=True, text=True).stdout.split()
    assert not left  # Ray's servers and workers ended with the driver
    for folder in folders:
        assert "resume" in torch.load(folder / "checkpoints" / "last.pt", weights_only=True)
