"""Faults of the machine under a run: a run folder made read-only or removed while it trains, and a metrics.csv
left damaged by a process killed while writing it. Each is one line and a non-zero exit, or works; never a
traceback, and the last checkpoint stays resumable."""

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import time

import pandas as pd
import pytest

import societal
from societal.cli import main


def updates_in(folder):
    try:
        return len(pd.read_csv(folder / "metrics.csv"))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


def unprivileged() -> list[str]:
    """A prefix that takes from root what lets it write where permissions forbid (the process keeps its user)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root writes where permissions forbid, and setpriv is not there to prevent it")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


def societal_cli(*argv, prefix=()):
    return subprocess.Popen([*prefix, sys.executable, "-m", "societal", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def training(folder, prefix=()):
    """A long run in ``folder``, once it has written a few updates."""
    process = societal_cli("train", "societal/Chain-v0", "--steps", "100000000", "--set", "checkpoint_every=3",
                           "--quiet", "--out", str(folder), prefix=prefix)
    while updates_in(folder) < 5:
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    return process


def one_line(process, code):
    _, err = process.communicate(timeout=300)
    assert process.returncode == code and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def set_writable(folder, writable):
    """chmod -R u+w or a-w: a temporary file the run removes meanwhile is passed over."""
    for path in [folder, *folder.rglob("*")]:
        with contextlib.suppress(FileNotFoundError):
            mode = path.stat().st_mode
            path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def test_a_run_folder_made_read_only_is_one_line_and_resumes_once_writable(tmp_path):
    prefix, folder = unprivileged(), tmp_path / "run"
    process = training(folder, prefix)
    set_writable(folder, False)
    assert "cannot write" in one_line(process, 1)
    assert "Permission denied" in one_line(societal_cli("train", "--resume", str(folder), prefix=prefix), 1)
    evaluated = subprocess.run([*prefix, sys.executable, "-m", "societal", "eval", str(folder), "--episodes", "2"],
                               capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr  # reading needs no writing
    set_writable(folder, True)
    last = societal.load(folder, "last").update
    assert main(["train", "--resume", str(folder), "--steps", str(4096 * (last + 2)), "--quiet"]) == 0
    assert list(pd.read_csv(folder / "metrics.csv")["update"])[-3:] == [last, last + 1, last + 2]


def test_a_run_folder_removed_while_it_trains_is_one_line_and_nothing_is_made_again(tmp_path):
    folder = tmp_path / "run"
    process = training(folder)
    folder.rename(tmp_path / "gone")  # as rm -rf, at once: the run's paths lead nowhere
    shutil.rmtree(tmp_path / "gone")
    assert "No such file or directory" in one_line(process, 1)
    assert not folder.exists()
    for argv in (["train", "--resume", str(folder)], ["eval", str(folder)]):
        assert "is not a run folder" in one_line(societal_cli(*argv), 2)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fixture") / "run"
    societal.train("societal/Chain-v0", steps=8192, eval_episodes=2, out=folder, progress=False)
    return folder


@pytest.mark.parametrize("damage", [
    b"",  # killed before its header
    None,  # the header alone: killed before the first row
    b"update,env_steps,auction_st",  # killed within the header
    "first row cut short",
    bytes(range(256)) * 8,  # garbage, as from a damaged disk
    b"\x00" * 4096,  # a file system's zeros after a crash
], ids=["empty", "header only", "header cut short", "row cut short", "binary", "zeros"])
def test_a_damaged_metrics_csv_leaves_report_eval_and_resume_one_line_or_working(damage, finished, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(finished, folder)
    metrics = folder / "metrics.csv"
    lines = metrics.read_bytes().splitlines(keepends=True)
    if damage is None:
        damage = lines[0]
    elif damage == "first row cut short":
        damage = lines[0] + lines[1][:20]
    metrics.write_bytes(damage)
    assert main(["report", str(folder)]) in (0, 2)
    assert len(capsys.readouterr().err.strip().splitlines()) <= 1
    assert main(["eval", str(folder), "--episodes", "2"]) == 0
    assert main(["train", "--resume", str(folder), "--quiet"]) == 0  # finished: nothing to do
    assert main(["train", "--resume", str(folder), "--steps", "16384", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    updates = list(pd.read_csv(metrics)["update"])
    assert updates[-2:] == [3, 4] and updates == sorted(set(updates))  # the rows trained since, under a header
    assert main(["report", str(folder)]) == 0
