"""experiments control and minatar: their commands, and the report of their runs against PPO and random play."""

from pathlib import Path

import pandas as pd

from societal.cli import main
from societal.experiments.beyond import TASKS, random_return, scores
from societal.experiments.paper import commands


def test_every_task_runs_the_society_at_its_defaults_and_ppo_at_its_users_settings():
    from societal.arguments import build_parser
    from societal.cli import train_arguments
    from societal.config import from_preset

    for family in TASKS:
        runs = commands(family, 2, Path("runs"))
        assert len(runs) == 2 * 2 * len(TASKS[family])
        for folder, argv in runs:
            kwargs = train_arguments(build_parser().parse_args(argv))  # every flag and --set name is valid
            for key in ("out", "progress"):
                kwargs.pop(key)
            config = from_preset(kwargs.pop("preset"), kwargs.pop("env"), **kwargs).validate()
            assert config.agent == ("society" if folder.parent.name == "society" else "monolithic")
            assert config.preset == {"society": {"control": "control", "minatar": "minatar"}[family],
                                     "ppo": {"control": "ppo", "minatar": "ppo_minatar"}[family]}[folder.parent.name]


def test_the_report_scores_the_society_between_random_play_and_ppo(tmp_path, capsys):
    runs = [(f, argv) for f, argv in commands("control", 1, tmp_path, scale=0.01) if f.parts[-3] == "cartpole"]
    for _, argv in runs:
        assert main([*argv, "--set", "eval_episodes=10", "--quiet"]) == 0
    assert main(["experiments", "control", "--report", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cartpole" in out and "of PPO's gain over random play on" in out
    results = pd.read_csv(tmp_path / "control" / "results.csv")
    assert set(results.condition) == {"society", "ppo"} and len(results) == 2
    table = pd.read_csv(tmp_path / "control" / "scores.csv")
    ppo = table[table.condition == "ppo"].iloc[0]
    assert ppo.score == 1.0 and 15 < ppo.random < 30  # random CartPole episodes last ≈ 22 steps
    assert ppo.published == 490.04 and (tmp_path / "control" / "returns.png").is_file()


def test_scores_are_normalised_between_random_play_and_ppo(monkeypatch):
    import societal.experiments.beyond as beyond

    monkeypatch.setattr(beyond, "random_return", lambda env: 20.0)
    table = pd.DataFrame({"task": "cartpole", "env": "CartPole-v1", "condition": ["ppo"] * 3 + ["society"] * 3,
                          "eval_return": [500.0, 480.0, 420.0, 470.0, 260.0, 500.0]})
    society = scores(table).set_index("condition").loc["society"]
    assert society.score == round((470 - 20) / (480 - 20), 3) and society.seeds == 3


def test_random_return_plays_uniformly_random_actions():
    assert 15 < random_return("CartPole-v1", episodes=50) < 30


def test_the_command_line_knows_every_family():
    from societal.experiments.paper import BEYOND

    assert set(BEYOND) == set(TASKS)
