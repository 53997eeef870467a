"""Sweeps and experiments on Ray: a cluster started by the README's recipe (2 CPUs, on loopback), shared by
these tests, and private instances. Everything Ray writes stays in one temporary folder, removed at the end."""

import contextlib
import importlib
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

import societal
from societal.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]  # one cluster: these tests share a worker
TINY = ["--steps", "8192", "--set", "eval_episodes=10", "--set", "eval_every=1"]
README = Path(__file__).parents[1] / "README.md"


@pytest.fixture(scope="module", autouse=True)
def ray_temp():
    """Ray's folder for every instance of these tests (short: Ray's socket paths must fit 107 characters)."""
    folder = tempfile.mkdtemp(prefix="ray")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", folder)
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
            patch.delenv(name, raising=False)
        yield folder
    shutil.rmtree(folder, ignore_errors=True)


def head_node(lines: list[str], home: Path) -> tuple[str, subprocess.Popen]:
    """Run a head node's shell ``lines`` (``ray start --head --port 6379`` among them) with ``home`` as HOME, on
    a free port of 127.0.0.1 (with Ray's switch that keeps it there), 2 CPUs and no dashboard."""
    port = free_port()
    script = "\n".join(lines).replace("--port 6379", f"--port {port} --num-cpus 2 --include-dashboard false "
                                                      "--disable-usage-stats")
    env = {**os.environ, "HOME": str(home), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    start = subprocess.Popen(["bash", "-euc", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=env, start_new_session=True)
    out = start.communicate(timeout=120)[0]
    if start.returncode != 0:
        end_session(start.pid)
        pytest.fail(out)
    return f"127.0.0.1:{port}", start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recipe() -> list[str]:
    """The README's lines that start a cluster's head node: its block's lines up to ``ray start --head``."""
    block = next(b.split("```")[0] for b in README.read_text().split("```bash\n") if "ray start --head" in b)
    lines = [line.strip() for line in block.splitlines()]
    return lines[:next(i for i, line in enumerate(lines) if "ray start --head" in line) + 1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The README's head node, its token in a temporary home; the tests' driver holds that token."""
    home = tmp_path_factory.mktemp("home")
    address, start = head_node(recipe(), home)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("RAY_AUTH_TOKEN_PATH", str(home / ".ray" / "auth_token"))
            yield address
    finally:
        end_session(start.pid)  # not `ray stop`: it would stop every Ray instance on the machine


def end_session(sid):
    """SIGTERM, then SIGKILL after 10 s, to every process of session ``sid``."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 2.0)):
        pids = session(sid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline and session(sid):
            time.sleep(0.2)


def session(sid) -> list[int]:
    """The processes of session ``sid``."""
    found = subprocess.run(["pgrep", "-s", str(sid)], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def test_the_readme_cluster_refuses_a_client_without_its_token(cluster, tmp_path, monkeypatch):
    assert os.path.getsize(os.environ["RAY_AUTH_TOKEN_PATH"]) > 32  # the recipe made it
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token either
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # to reach it on loopback
    client = subprocess.run([sys.executable, "-c", f"import ray; ray.init(address={cluster!r})"], text=True,
                            capture_output=True, timeout=120, env=env)
    assert client.returncode != 0 and "Authentication token is missing" in client.stderr
    assert main(["sweep", "societal/Bandit-v0", "--out", str(tmp_path / "sweep"), "--address", cluster]) == 2
    assert not (tmp_path / "sweep").exists()


def test_an_address_where_no_cluster_answers_is_one_line(tmp_path, capsys):
    address = f"127.0.0.1:{free_port()}"
    assert main(["sweep", "societal/Bandit-v0", "--out", str(tmp_path / "sweep"), "--address", address]) == 2
    assert capsys.readouterr().err == f"societal sweep: error: no Ray cluster answers at {address} (within 10 s)\n"


@pytest.mark.parametrize("resources", [["--cpus", "1", "--cpus-per-run", "2"], ["--gpus-per-run", "1"]])
def test_runs_that_ask_for_more_than_the_cluster_has_are_one_line(resources, cluster, tmp_path, capsys):
    """Tune would wait for ever for resources no node has (this machine has no GPU)."""
    flags = resources if "--cpus" in resources else [*resources, "--address", cluster]
    assert main(["sweep", "societal/Bandit-v0", "--out", str(tmp_path / "sweep"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "each run asks for" in err and "and the cluster has" in err


def test_a_cluster_without_authentication_gets_a_one_line_warning(tmp_path, capfd):
    address, start = head_node(["RAY_AUTH_MODE=disabled ray start --head --port 6379"], tmp_path)
    try:
        assert main(["sweep", "societal/Bandit-v0", "--steps", "4096", "--set", "eval_episodes=10",
                     "--out", str(tmp_path / "sweep"), "--address", address]) == 0
    finally:
        end_session(start.pid)
    err = capfd.readouterr().err
    assert re.search(rf"^societal sweep: warning: the Ray cluster at {address} runs without token authentication: "
                     r"anyone who can reach its ports can run code on its nodes \(.*\)$", err, re.M), err


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


def test_a_sweep_trains_a_users_own_environment_named_with_import(cluster, tmp_path, capsys, monkeypatch):
    from test_user_environments import MODULE

    (tmp_path / "corridor_envs.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)  # where the module is, as for a user who wrote it there
    assert main(["sweep", "my/Corridor-v0", "--import", "corridor_envs", "--grid", "explore=0.0,0.1", *TINY,
                 "--out", "sweep", "--address", cluster]) == 0
    assert capsys.readouterr().out.count(" done") == 2
    assert main(["report", "sweep"]) == 0
    report = capsys.readouterr().out
    assert "explore=0.0" in report and "explore=0.1" in report and "my/Corridor-v0" in report


def test_a_failing_run_is_reported_and_the_others_finish(cluster, tmp_path, capsys):
    table = societal.sweep("societal/Chain-v0", {"policy_lr": [4e-5, 1.0]}, out=tmp_path / "sweep", steps=8192,
                           eval_episodes=10, address=cluster)
    outcome = dict(zip(table.run.map(lambda r: r.split("/")[-2]), table.outcome))
    assert outcome["policy_lr=4e-05"] == "done"
    assert outcome["policy_lr=1.0"].startswith("failed:") and "diverged" in outcome["policy_lr=1.0"]


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
    (tmp_path / "sweep").rename(tmp_path / "moved")  # a stopped sweep can be moved and resumed where it is
    moved = [str(tmp_path / "moved") if a == str(tmp_path / "sweep") else a for a in args]
    short, long = (tmp_path / "moved" / f"steps={n}" / "seed0" for n in (8192, 400000))
    assert main([*moved, "--resume"]) == 0
    assert not (tmp_path / "sweep").exists()  # nothing written where it was
    assert (short / "metrics.csv").read_text() == finished  # not run again
    assert pd.read_csv(long / "metrics.csv").env_steps.iloc[-1] >= 400000
    assert main([*moved, "--resume"]) == 0  # a finished sweep resumed again: nothing to do


def test_experiments_run_their_stages_on_ray_after_the_runs_they_read(cluster, tmp_path, capsys):
    assert main(["experiments", "tworooms", "--scale", "0.0002", "--for-real", "--root", str(tmp_path),
                 "--address", cluster, "--only", "option-red", "option-green", "option-blue", "green-society",
                 "blue-society"]) == 0
    out = capsys.readouterr().out
    assert out.count(" done") == 5
    blue = societal.load(tmp_path / "tworooms" / "blue-society" / "seed0")
    assert blue.config.init_from == str(tmp_path / "tworooms" / "green-society" / "seed0")


def test_progress_is_a_line_per_event_and_a_line_of_counts(capsys):
    from societal.distributed import progress

    trials = [SimpleNamespace(status=status, config={"run": f"lr=0.1/seed{i}"}, error_file=None)
              for i, status in enumerate(["RUNNING", "TERMINATED", "ERROR", "PENDING", "PENDING"])]
    callback = progress(every=0.0)
    callback.on_trial_start(iteration=1, trials=trials, trial=trials[0])
    callback.on_trial_complete(iteration=2, trials=trials, trial=trials[1])
    callback.on_trial_error(iteration=3, trials=trials, trial=trials[2])
    callback.on_step_end(iteration=4, trials=trials)
    lines = [line.split(" ", 1)[1] for line in capsys.readouterr().out.splitlines()]  # after the time of day
    assert lines == ["lr=0.1/seed0: started", "lr=0.1/seed1: finished",
                     "lr=0.1/seed2: failed: see the table at the end",
                     "1 running, 1 finished, 1 failed, 2 waiting (0 min)"]


def test_runs_that_ray_ended_without_a_signal_are_exit_1_and_not_a_false_sigint():
    """Tune ends runs alike when a SIGINT comes and when Ray loses their node: only a signal is a stop."""
    from societal.distributed import fit, note_sigint
    from societal.errors import RunsLost, Stopped

    class Tuner:
        def __init__(self, interrupt):
            self.interrupt = interrupt

        def fit(self):
            signal.signal(signal.SIGINT, lambda number, frame: None)  # Tune's handler: it ends the run gracefully
            note_sigint()  # as the sweep's callback does once Tune's run starts
            if self.interrupt:
                os.kill(os.getpid(), signal.SIGINT)
            return [*(SimpleNamespace(error=None, config={"run": name}) for name in ("a/seed0", "b/seed0")),
                    SimpleNamespace(error=None, config=None)]  # a trial that never started

    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(RunsLost, match=r"Ray ended 2 of the runs .* \(b/seed0\): a node or a worker was lost"):
            fit(Tuner(interrupt=False), False, lambda name: name == "a/seed0")
        with pytest.raises(Stopped, match="stopped by SIGINT; runs cut short: 2") as stopped:
            fit(Tuner(interrupt=True), False, lambda name: name == "a/seed0")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert RunsLost.exit_status == 1 and stopped.value.exit_status == 130


def test_a_private_ray_instance_listens_on_loopback_asks_for_a_token_prints_little_and_leaves_nothing(tmp_path):
    import ray  # noqa: F401  (puts the psutil that comes with Ray on the path)

    from societal.cluster import gcs_authentication

    psutil = importlib.import_module("psutil")

    sweep = subprocess.Popen([sys.executable, "-m", "societal", "sweep", "societal/Bandit-v0", "--grid",
                              "mechanism=ccv,bb", "--seeds", "2", "--steps", "4096", "--set", "eval_episodes=10",
                              "--cpus", "2", "--out", str(tmp_path / "sweep")], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True,
                             env={**os.environ, "RAY_AUTH_MODE": "disabled", "HOME": str(tmp_path)})
    while not list((tmp_path / "sweep").glob("*/seed*/metrics.csv")):  # a run is training
        assert sweep.poll() is None, sweep.communicate()
        time.sleep(0.2)
    listening = {}
    for pid in session(sweep.pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(int(pid))
            listening.update({c.laddr: process.name() for c in process.net_connections("inet") if c.status == "LISTEN"})
    gcs = next((address for address, name in listening.items() if name == "gcs_server"), None)
    asks = gcs and gcs_authentication(f"127.0.0.1:{gcs.port}")
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0 and out.count(" done") == 4, err
    assert len((out + err).splitlines()) <= 40, out + err
    assert "raylet" in listening.values() and asks == "token", listening  # with RAY_AUTH_MODE=disabled
    assert all(loopback(address.ip) for address in listening), listening
    time.sleep(2)
    assert not session(sweep.pid)
    assert not (tmp_path / ".ray").exists()  # its token lived in its processes only


def test_kill_9_of_a_sweep_driver_leaves_no_ray_process_and_no_temporary_folder(ray_temp, tmp_path):
    """Ray's agents (dashboard, runtime-env) sometimes outlive their raylet; the driver's watchdog ends them."""
    ours = {p.name for p in Path(ray_temp).iterdir()}  # the shared cluster's, if it runs
    args = ["sweep", "societal/Chain-v0", "--grid", "mechanism=ccv,bb", "--steps", "2000000", "--cpus", "2",
            "--out", str(tmp_path / "sweep")]
    driver = subprocess.Popen([sys.executable, "-m", "societal", *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while len(list((tmp_path / "sweep").glob("*/seed0/checkpoints/last.pt"))) < 2:  # both runs are training
        assert driver.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 20
    while (session(driver.pid) or {p.name for p in Path(ray_temp).iterdir()} - ours) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not session(driver.pid), subprocess.run(["ps", "-o", "pid,args", "-s", str(driver.pid)], text=True,
                                                   capture_output=True).stdout
    assert not {p.name for p in Path(ray_temp).iterdir()} - ours  # the instance's temporary folder is removed
    assert main([*args, "--resume"]) == 0  # and the runs go on from their checkpoints


def loopback(ip: str) -> bool:
    """127.0.0.0/8 or ::1, also as IPv6's mapping of IPv4 (``::ffff:127.0.0.1``, where gRPC listens)."""
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


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
    assert not session(driver.pid)  # Ray's servers and workers ended with the driver
    for folder in folders:
        assert "resume" in torch.load(folder / "checkpoints" / "last.pt", weights_only=True)


def test_sigterm_while_ray_starts_is_one_line_and_exit_143(tmp_path):
    import ray  # noqa: F401  (puts the psutil that comes with Ray on the path)

    psutil = importlib.import_module("psutil")
    driver = subprocess.Popen([sys.executable, "-m", "societal", "sweep", "societal/Chain-v0", "--cpus", "2",
                               "--out", str(tmp_path / "sweep")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    while "gcs_server" not in {p.name() for p in psutil.Process(driver.pid).children(recursive=True)}:
        assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
        time.sleep(0.05)
    driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 143 and len(err.strip().splitlines()) == 1 and "stopped by SIGTERM" in err, err
    time.sleep(2)
    assert not session(driver.pid)
