"""The command line: training, evaluation and the experiments' commands (bad inputs: test_bad_inputs.py)."""

import shutil
import subprocess
import sys

import pytest

import societal
from societal.cli import main


def fails(argv, capsys, tmp_path):
    before = sorted(tmp_path.rglob("*"))
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert sorted(tmp_path.rglob("*")) == before, "nothing may be written"
    return err


def test_an_existing_output_folder_is_never_overwritten(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("earlier results")
    err = fails(["train", "societal/Chain-v0", "--out", str(tmp_path / "run")], capsys, tmp_path)
    assert "already exists" in err and (tmp_path / "run" / "keep.txt").read_text() == "earlier results"


def test_train_then_eval(capsys, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "societal/Bandit-v0", "--steps", "8192", "--dropout", "--out", str(out), "--quiet",
                 "--set", "eval_every=1"]) == 0
    assert "evaluation return" in capsys.readouterr().out
    assert main(["eval", str(out), "--episodes", "50"]) == 0
    printed = capsys.readouterr().out
    assert "over 50 episodes" in printed and "auctions won per primitive" in printed
    assert "exact: score (return − random) / (optimum − random)" in printed and "optimal path" in printed  # a table
    assert "the last checkpoint (update" in printed
    assert main(["eval", str(out), "--episodes", "5", "--checkpoint", "best"]) == 0
    assert "the best checkpoint: update" in capsys.readouterr().out


def test_corrupt_checkpoint(capsys, tmp_path):
    run = societal.train("societal/Bandit-v0", steps=4096, out=tmp_path / "run", progress=False)
    (run.path / "checkpoints" / "last.pt").write_bytes(b"\x00garbage")
    assert "cannot read checkpoint" in fails(["eval", str(run.path)], capsys, tmp_path)
    (run.path / "checkpoints" / "best.pt").unlink()
    assert "has no checkpoint best.pt" in fails(["eval", str(run.path), "--checkpoint", "best"], capsys, tmp_path)


def test_experiments_print_the_paper_commands(capsys):
    assert main(["experiments", "bandit", "--seeds", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 and all(line.startswith("societal train societal/Bandit-v0") for line in lines)
    assert sum("--mechanism ccv --dropout" in line for line in lines) == 2
    assert "--seed 1" in lines[-1]


def test_experiments_add_seeds_and_select_conditions(capsys):
    assert main(["experiments", "tworooms", "--first-seed", "5", "--seeds", "2", "--only", "blue-society"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("societal/BlueTwoRooms-v0" in line for line in lines)
    assert "blue-society/seed5" in lines[0] and "--seed 6" in lines[1]


def test_experiments_pass_the_device_and_the_time_budget_to_every_run(capsys):
    assert main(["experiments", "mental-rotation", "--seeds", "2", "--device", "cuda", "--max-wall-s", "600"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(line.endswith("--device cuda --max-wall-s 600.0") for line in lines)


def test_experiments_refuse_to_overwrite(capsys, tmp_path):
    (tmp_path / "duality" / "cloned-ccv" / "seed0").mkdir(parents=True)
    err = fails(["experiments", "duality", "--for-real", "--root", str(tmp_path)], capsys, tmp_path)
    assert "already exist" in err


def test_the_report_summarises_every_seed_and_draws_the_curves(capsys, tmp_path):
    for seed in (0, 1):
        societal.train("societal/Bandit-v0", steps=8192, seed=seed, eval_every=1, eval_episodes=20, progress=False,
                       out=tmp_path / "bandit" / "cloned-ccv" / f"seed{seed}")
    assert main(["experiments", "bandit", "--report", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cloned-ccv/seed0" in out and "cloned-ccv/seed1" in out
    assert (tmp_path / "bandit" / "returns.png").is_file()


def test_the_report_reads_plain_runs_a_sweep_and_a_single_run(capsys, tmp_path):
    for name, seed in (("first", 0), ("second", 1)):
        societal.train("societal/Chain-v0", steps=1, seed=seed, eval_episodes=2, progress=False,
                       out=tmp_path / "runs" / name)
    assert main(["report", str(tmp_path / "runs")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "env", "env_steps", "wall_s", "eval_return", "best_eval_return"]
    assert [line.split()[:3] for line in lines[1:3]] == [["first", "societal/Chain-v0", "4096"],
                                                         ["second", "societal/Chain-v0", "4096"]]
    assert lines[3] == f"evaluation curves: {tmp_path / 'runs' / 'returns.png'}"
    assert (tmp_path / "runs" / "returns.png").is_file()
    for seed, name in enumerate(("first", "second")):  # the same runs as two seeds of a sweep's setting
        shutil.copytree(tmp_path / "runs" / name, tmp_path / "sweep" / "mechanism=ccv" / f"seed{seed}")
    assert main(["report", str(tmp_path / "sweep")]) == 0
    out = capsys.readouterr().out
    assert "mechanism=ccv/seed1" in out and "mechanism=ccv/median of 2 seeds" in out and "eval_return_90%" in out
    assert "NaN" not in out and "<NA>" not in out and "4096.0" not in out
    assert main(["report", str(tmp_path / "runs" / "first")]) == 0  # one run: its row; its plots/ has the curves
    assert capsys.readouterr().out.splitlines()[1].split()[0] == "first"
    assert not (tmp_path / "runs" / "first" / "returns.png").exists()


def test_every_flag_has_a_help_line_and_help_shows_defaults(capsys):
    from societal.arguments import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, command in commands.items():
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help line"
    for argv, shown in ((["train", "--help"], "(paper: 2000000)"), (["eval", "--help"], "(default: 100)")):
        with pytest.raises(SystemExit):
            main(argv)
        assert shown in capsys.readouterr().out


def test_importing_societal_does_not_import_ray():
    code = "import sys, societal; societal.sweep; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_help_imports_neither_torch_nor_pandas():
    """``--help`` answers at once: the command line's modules import torch only when a command runs."""
    code = "import sys, societal.cli; print(sorted({'torch', 'pandas', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_of_config_explains_every_field():
    import dataclasses
    import pydoc

    from societal.config import field_docs

    text = pydoc.render_doc(societal.Config, renderer=pydoc.plaintext)
    docs = field_docs(societal.Config)
    for field in dataclasses.fields(societal.Config):
        assert docs.get(field.name), f"Config.{field.name} has no note"
        assert f"{field.name}: " in text and docs[field.name][:40] in " ".join(text.replace("|", " ").split())
    assert "general: 'mean'" in text and "in (0, 1]" in text  # the preset's values and the allowed ranges


def test_every_subcommand_says_what_it_reads_and_writes():
    from societal.arguments import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for name, command in commands.items():
        text = " ".join(command.format_help().split())
        assert "Reads" in text and "writes" in text.lower(), f"societal {name} --help"
