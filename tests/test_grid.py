"""A sweep's runs from its grid: folder names that cannot escape the sweep's folder, and half-made runs that are
removed only when they hold nothing but a run's own files."""

import os

import pytest

import societal
from societal.errors import SocietalError
from societal.grid import LONGEST, check_sweep, folder_name, grid_runs, record_sweep
from societal.storage import remove_half_made


@pytest.mark.parametrize("value", ["../../../parent", "..", ".", "a/b", "/etc", "x" * 500, "ünï cödé", "%2F"])
def test_a_value_becomes_one_folder_name_inside_the_sweep(value, tmp_path):
    name = folder_name([("init_from", value)])
    assert "/" not in name and name not in (".", "..") and not name.startswith(".") and len(name) <= LONGEST
    assert (tmp_path / name).resolve().parent == tmp_path.resolve()


def test_distinct_values_give_distinct_names():
    values = ["../a", "..%2Fa", "a b", "a%20b", "x" * 300, "x" * 299 + "y", "0.9", "0.90", "(16, 16)", ".a", "%2Ea"]
    assert len({folder_name([("k", v)]) for v in values}) == len(values)


def test_a_resumed_sweep_keeps_its_runs(tmp_path):
    out = tmp_path / "sweep"
    runs = grid_runs("societal/Chain-v0", {"mechanism": ["ccv", "bb"]}, range(2), out, None, {"steps": 8192})
    check_sweep(runs, out, False, 1.0, 0.0)
    assert not out.exists()  # checking writes nothing
    with pytest.raises(SocietalError, match="holds no sweep to resume"):
        check_sweep(runs, out, True, 1.0, 0.0)
    record_sweep(runs, out)  # as the sweep starts
    check_sweep(runs, out, True, 1.0, 0.0)  # the same runs: fine
    longer = grid_runs("societal/Chain-v0", {"mechanism": ["ccv", "bb"]}, range(2), out, None, {"steps": 16384})
    with pytest.raises(SocietalError, match="a resumed sweep keeps its runs and their settings"):
        check_sweep(longer, out, True, 1.0, 0.0)
    moved = tmp_path / "moved"
    os.rename(out, moved)  # relocatable: the record names runs relative to the sweep's folder
    check_sweep(grid_runs("societal/Chain-v0", {"mechanism": ["ccv", "bb"]}, range(2), moved, None,
                          {"steps": 8192}), moved, True, 1.0, 0.0)


def test_a_half_made_run_is_removed_only_if_it_holds_nothing_else(tmp_path):
    run = societal.train("societal/Chain-v0", steps=1, eval_episodes=2, out=tmp_path / "run", progress=False)
    with pytest.raises(SocietalError, match="can be resumed"):
        remove_half_made(run.path)
    (run.path / "checkpoints" / "last.pt").unlink()
    (run.path / "notes.txt").write_text("the user's")
    with pytest.raises(SocietalError, match=r"not a half-made run of societal's \(notes.txt\)"):
        remove_half_made(run.path)
    assert (run.path / "notes.txt").read_text() == "the user's"
    (run.path / "notes.txt").unlink()
    remove_half_made(run.path)
    assert not run.path.exists()
