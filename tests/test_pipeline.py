"""The TwoRooms pipeline end to end at a tiny budget: options, society and baselines, transfer, report."""

import pandas as pd
import torch

import societal
from societal.cli import main
from societal.distributed import stages
from societal.experiments.paper import commands
from societal.experiments.report import median_row, summarize

TINY = ["--num-envs", "8", "--quiet", "--set", "auction_steps_per_update=64", "--set", "minibatch=32",
        "--set", "eval_episodes=4", "--set", "eval_every=1"]


def test_every_stage_of_the_tworooms_pipeline_runs(tmp_path, capsys):
    runs = commands("tworooms", 1, tmp_path, scale=0.0002)
    assert [f.parent.name for f, _ in runs] == ["option-red", "option-green", "option-blue", "green-society",
                                                "green-hierarchical", "green-flat", "blue-society", "blue-hierarchical"]
    for folder, argv in runs:
        assert main(argv + TINY) == 0, folder
    root = tmp_path / "tworooms"
    society = societal.load(root / "green-society" / "seed0")
    assert society.agent.num_primitives == 3 and len(society.config.options) == 3  # one primitive per option
    m = society.metrics
    assert (m.env_steps > m.auction_steps).iloc[-1]  # an option lasts several env steps
    assert (root / "green-society" / "seed0" / "qualitative" / "episode.png").is_file()
    # transfer starts from the parent's best weights
    blue = societal.load(root / "blue-society" / "seed0", "best")
    assert blue.config.init_from == str(root / "green-society" / "seed0")
    report = summarize("tworooms", tmp_path)
    assert len(report) == 8 and {"auction_steps_to_target", "success_rate"} <= set(report.columns)
    for plot in ("green.png", "blue.png", "transfer_weight_change.png"):
        assert (root / plot).is_file()

    # options are frozen unless asked: fine-tuned ones are saved, reloaded and carried into a transfer
    options = [str(root / f"option-{g}" / "seed0") for g in ("red", "green", "blue")]
    pretrained = torch.cat([societal.load(o, "best").agent.theta for o in options])  # options: their best weights
    torch.testing.assert_close(societal.load(root / "green-society" / "seed0").primitives().net.theta, pretrained)
    tuned = tmp_path / "tuned"
    assert main(["train", "societal/GreenTwoRooms-v0", "--options", *options, "--train-options", "--network",
                 "minigrid_cnn", "--max-auction-steps", "128", "--steps", "10000", "--out", str(tuned), *TINY]) == 0
    theta = societal.load(tuned, "best").primitives().net.theta
    assert (theta - pretrained).abs().max() > 1e-3
    child = tmp_path / "child"
    assert main(["train", "societal/BlueTwoRooms-v0", "--options", *options, "--init-from", str(tuned), "--network",
                 "minigrid_cnn", "--max-auction-steps", "1", "--steps", "10000", "--out", str(child), *TINY]) == 0
    torch.testing.assert_close(societal.load(child).primitives().net.theta, theta)  # carried, then frozen


def test_transfer_loads_the_parent_weights(tmp_path):
    parent = societal.train("societal/Chain-v0", steps=8192, out=tmp_path / "parent", progress=False)
    child = societal.train("societal/Chain-v0", steps=1, seed=1, out=tmp_path / "child", progress=False,
                           init_from=str(parent.path))
    best = torch.load(parent.path / "checkpoints" / "best.pt", weights_only=True)["agent"]["theta"]
    split = child.agent.split
    # one update at the paper's policy learning rate (4e-5) moves the policy by at most 32 · 4e-5
    assert (child.agent.theta[:, :split] - best[:, :split]).abs().max() < 2e-3
    fresh = societal.Society((6,), 2)
    assert (fresh.theta[:, :split] - best[:, :split]).abs().max() > 0.1


def test_a_run_is_staged_after_every_run_whose_folder_it_reads(tmp_path):
    runs = commands("tworooms", 2, tmp_path, scale=0.0002)
    names = [f"{f.parent.name}/{f.name}" for f, _ in runs]
    staged = [sorted(names[i] for i in stage) for stage in stages([(f, argv, {}) for f, argv in runs])]
    assert staged == [sorted(f"{r}/seed{k}" for r in ("option-red", "option-green", "option-blue", "green-flat")
                             for k in (0, 1)),  # the flat baseline reads no run
                      sorted(f"green-{c}/seed{k}" for c in ("society", "hierarchical") for k in (0, 1)),
                      sorted(f"blue-{c}/seed{k}" for c in ("society", "hierarchical") for k in (0, 1))]


def test_the_median_row_reads_the_median_curve_over_the_evaluations_every_seed_made():
    def evals(returns, steps=(0, 10, 20)):
        return pd.DataFrame({"auction_steps": steps, "eval_return_mean": returns, "eval_success_rate": 0.0})

    row = median_row("blue-society", [evals([0.0, 0.6, 0.7]), evals([0.0, 0.2, 0.6]),
                                      evals([0.0, 0.9, 0.5, 0.6], (0, 5, 10, 20))])
    assert row["auction_steps_to_target"] == 20 and row["eval_return"] == 0.6  # medians 0, 0.5, 0.6
    assert median_row("blue-society", [evals([0.0, 0.1, 0.2])] * 2)["auction_steps_to_target"] is None
