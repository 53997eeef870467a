"""Every bad input is one line on stderr and exit status 2 (or ``SocietalError`` from Python), and nothing is
written: the command line, the Python API, config and checkpoint files, and environment arguments."""

import json
import shutil
import struct
import zipfile

import pytest
import torch

import societal
from societal.cli import main
from societal.errors import SocietalError
from societal.storage import digest

CHAIN = ["train", "societal/Chain-v0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run folders and files the bad inputs point at, made once: ``{name}`` in a case is its path."""
    root = tmp_path_factory.mktemp("fixtures")
    tiny = dict(steps=1, eval_episodes=2, progress=False)
    societal.train("societal/Chain-v0", out=root / "chain", **tiny)
    societal.train("societal/Bandit-v0", agent="monolithic", out=root / "monolithic", **tiny)
    for name, change in (("badjson", lambda p: (p / "config.json").write_text("{not json")),
                         ("unknownkey", lambda p: edit_config(p, colour="red")),
                         ("badvalue", lambda p: edit_config(p, gamma=2.0)),
                         ("otherenv", lambda p: edit_config(p, env="societal/Bandit-v0")),
                         ("garbage", lambda p: (p / "checkpoints" / "last.pt").write_bytes(b"\x00garbage")),
                         ("pickle", lambda p: torch.save({"x": object()}, p / "checkpoints" / "last.pt")),
                         ("nolast", lambda p: (p / "checkpoints" / "last.pt").unlink()),
                         ("flipped", lambda p: flip_tensor_bytes(p / "checkpoints" / "last.pt", 64)),
                         ("nested", lambda p: (p / "config.json").write_text('{"env_kwargs": {"a": '
                                                                              + "[" * 10**5 + "]" * 10**5 + "}}")),
                         ("noweights", lambda p: [rewrite(p / "checkpoints" / f"{n}.pt", lambda c: c["agent"].clear())
                                                  for n in ("best", "last")]),
                         ("wideweights", lambda p: [rewrite(p / "checkpoints" / f"{n}.pt", widen_theta)
                                                    for n in ("best", "last")]),
                         ("noppo", lambda p: rewrite(p / "checkpoints" / "last.pt", lambda c: c["resume"].pop("ppo"))),
                         ("smallppo", lambda p: rewrite(p / "checkpoints" / "last.pt",  # would broadcast in silence
                                                        lambda c: c["resume"]["ppo"].update(m=torch.zeros(1)))),
                         ("emptymetrics", lambda p: (p / "metrics.csv").write_text("")),
                         ("textmetrics", lambda p: (p / "metrics.csv").write_text("env_steps,wall_s,eval_return_mean\n"
                                                                                 "many,long,high\n"))):
        shutil.copytree(root / "chain", root / name)
        change(root / name)
    shutil.copytree(root / "monolithic", root / "nooption")
    rewrite(root / "nooption" / "checkpoints" / "best.pt", lambda c: c["agent"].clear())
    (root / "afile").write_text("a file, not a folder")
    (root / "dangling").symlink_to(root / "nowhere")
    return root


def flip_tensor_bytes(file, count):
    """Invert ``count`` bytes in the middle of the largest tensor's data, as a failing disk might."""
    with zipfile.ZipFile(file) as z:
        record = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(file.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[record.header_offset + 26:record.header_offset + 30])
    start = record.header_offset + 30 + name_length + extra_length + record.file_size // 2 - count // 2
    data[start:start + count] = bytes(b ^ 0xFF for b in data[start:start + count])
    file.write_bytes(bytes(data))


def rewrite(file, change):
    """``change`` a checkpoint's content and write it with its digest made anew: a file whose damage the digest
    cannot see (the mistake of a program, or a run of another task)."""
    checkpoint = torch.load(file, weights_only=True)
    change(checkpoint)
    checkpoint["digest"] = digest({k: v for k, v in checkpoint.items() if k not in ("format", "digest")})
    torch.save(checkpoint, file)


def widen_theta(checkpoint):
    checkpoint["agent"]["theta"] = torch.zeros(3, 3)


def edit_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, **changes}))


CLI = [
    # the environment and its arguments
    (["train", "NoSuchEnv-v0"], "unknown environment 'NoSuchEnv-v0'"),
    (["train", "Pendulum-v1"], "needs a Discrete one"),
    (["train", "Blackjack-v1"], "supported: Discrete (one-hot) or Box"),
    ([*CHAIN, "--env-kwarg", "length"], "expected key=value"),
    ([*CHAIN, "--env-kwarg", "width=3"], "unexpected keyword argument 'width'"),
    ([*CHAIN, "--env-kwarg", "length=2.5"], "length must be an integer, got 2.5"),
    ([*CHAIN, "--env-kwarg", "length=1"], "length must be at least 2"),
    (["train", "FrozenLake-v1", "--env-kwarg", "map_name=9x9"], "cannot make FrozenLake-v1"),
    (["train", "societal/RandomMDP-v0", "--env-kwarg", "states=3"], "need states >= 4"),
    (["train", "societal/GridWorld-v0", "--env-kwarg", "slip=1.0"], "0 <= slip < 1"),
    (["train", "societal/Bandit-v0", "--env-kwarg", "values=[0.5]"], "one entry per arm (4)"),
    ([*CHAIN, "--eval-env-kwarg", "length=8"], "change the task's spaces"),
    ([*CHAIN, "--network", "minigrid_cnn"], "does not fit observations of shape (6,)"),
    # settings
    ([*CHAIN, "--mechanism", "first"], "invalid choice: 'first' (choose from 'v', 'ccv'"),
    ([*CHAIN, "--preset", "fast"], "invalid choice: 'fast'"),
    ([*CHAIN, "--device", "tpu"], "invalid choice: 'tpu'"),
    ([*CHAIN, "--frobnicate"], "unrecognized arguments: --frobnicate"),
    ([*CHAIN, "--steps", "-10"], "steps must be positive, got -10"),
    ([*CHAIN, "--steps", "ten"], "invalid int value: 'ten'"),
    ([*CHAIN, "--redundancy", "0"], "redundancy must be at least 1, got 0"),
    ([*CHAIN, "--num-envs", "0"], "num_envs must be at least 1"),
    ([*CHAIN, "--max-wall-s", "-1"], "max_wall_s must be 0 or positive, got -1.0"),
    ([*CHAIN, "--seed", "-1"], "seed must be in [0, 2³²), got -1"),
    ([*CHAIN, "--seed", "4294967296"], "seed must be in [0, 2³²)"),
    ([*CHAIN, "--reward-scale", "nan"], "reward_scale must be a finite number, got nan"),
    ([*CHAIN, "--reward-shift", "inf"], "reward_shift must be a finite number, got inf"),
    ([*CHAIN, "--train-options"], "train_options needs options (run folders whose policies become the primitives)"),
    ([*CHAIN, "--agent", "factorized", "--network", "minigrid_cnn"], "factorized policy is one MLP per primitive"),
    ([*CHAIN, "--set", "learning_rate=1"], "unknown setting learning_rate; allowed: env_kwargs"),
    ([*CHAIN, "--set", "preset=general"], "unknown setting preset"),
    ([*CHAIN, "--set", "gamma=abc"], "gamma must be a float, got 'abc'"),
    ([*CHAIN, "--set", "gamma=0"], "gamma must be in (0, 1], got 0"),
    ([*CHAIN, "--set", "num_envs=64.0"], "num_envs must be an int, got 64.0"),
    ([*CHAIN, "--set", "hidden=32"], "hidden must be a tuple of ints, got 32"),
    ([*CHAIN, "--set", "hidden=(16,0)"], "hidden must be one or more positive sizes"),
    ([*CHAIN, "--set", "policy_lr=nan"], "policy_lr must be a finite number, got nan"),
    ([*CHAIN, "--set", "value_lr=-1e-3"], "value_lr must be in [0, 1]"),
    ([*CHAIN, "--set", "entropy=inf"], "entropy must be a finite number"),
    ([*CHAIN, "--set", "clip=0"], "clip must be positive, got 0"),
    ([*CHAIN, "--set", "gae_lambda=1.5"], "gae_lambda must be in [0, 1], got 1.5"),
    ([*CHAIN, "--set", "lr_decay=0"], "lr_decay must be in (0, 1]"),
    ([*CHAIN, "--set", "max_grad_norm=0"], "max_grad_norm must be positive"),
    ([*CHAIN, "--set", "eval_episodes=0"], "eval_episodes must be at least 1"),
    ([*CHAIN, "--set", "checkpoint_every=0"], "checkpoint_every must be at least 1"),
    ([*CHAIN, "--set", "auction_steps_per_update=100"], "must be at least num_envs (256)"),
    ([*CHAIN, "--set", "bid_init_mean=1.0"], "bid_init_mean must be in (0, 1)"),
    ([*CHAIN, "--set", "explore=1"], "explore must be in [0, 1)"),
    ([*CHAIN, "--set", "price=median"], "unknown price 'median'; allowed: sampled, mean"),
    ([*CHAIN, "--set", "option_done_action=-1"], "option_done_action must be 0 or positive"),
    ([*CHAIN, "--set", "env_kwargs=5"], "env_kwargs must be a dict of keyword arguments"),
    ([*CHAIN, "--set", "env_kwargs=[1,2]"], "env_kwargs must be a dict of keyword arguments"),
    ([*CHAIN, "--set", "env_kwargs={{1:2}}"], "env_kwargs must be a dict of keyword arguments"),
    ([*CHAIN, "--set", "eval_env_kwargs=5"], "eval_env_kwargs must be a dict of keyword arguments"),
    ([*CHAIN, "--set", "eval_every=-1"], "eval_every must be 0 or positive"),
    ([*CHAIN, "--set", "value_lr=10"], "value_lr must be in [0, 1], got 10"),
    ([*CHAIN, "--set", "policy_lr=1e6"], "policy_lr must be in [0, 1]"),
    ([*CHAIN, "--set", "entropy=1e6"], "entropy must be in [0, 10]"),
    ([*CHAIN, "--set", "value_l2=1e30"], "value_l2 must be in [0, 10]"),
    ([*CHAIN, "--reward-scale", "1e300"], "reward_scale must be in [-10⁶, 10⁶]"),
    # folders the run reads or writes
    ([*CHAIN, "--options", "{afile}"], "not a run folder"),
    ([*CHAIN, "--options", "{chain}"], "options must be monolithic runs"),
    ([*CHAIN, "--options", "{monolithic}", "--set", "option_done_action=9"], "not an action of the options"),
    ([*CHAIN, "--init-from", "{nowhere}"], "is not a run folder"),
    ([*CHAIN, "--init-from", "{monolithic}"], "cannot transfer from"),
    ([*CHAIN, "--agent", "factorized", "--init-from", "{monolithic}"], "cannot transfer from"),
    ([*CHAIN, "--init-from", "{badjson}"], "corrupt"),
    (["train", "societal/Bandit-v0", "--init-from", "{chain}"],
     "chain/checkpoints/best.pt: its agent differs from this one in num_primitives (2, not 4), obs_shape ([6], not "),
    ([*CHAIN, "--init-from", "{noweights}"],
     'noweights/checkpoints/best.pt does not fit this run\'s agent: Missing key(s) in state_dict: "theta"'),
    ([*CHAIN, "--init-from", "{wideweights}"], "wideweights/checkpoints/best.pt does not fit this run's agent: size "
                                                 "mismatch for theta"),
    ([*CHAIN, "--options", "{monolithic}", "--set", "option_done_action=1"],
     "monolithic/checkpoints/best.pt on observations of shape (1,) with 4 actions, societal/Chain-v0 has (6,) with 2"),
    (["train", "societal/Bandit-v0", "--options", "{monolithic}", "{nooption}", "--set", "option_done_action=1"],
     'nooption/checkpoints/best.pt does not fit the option of its agent_spec: Missing key(s) in state_dict: "theta"'),
    ([*CHAIN, "--out", "{chain}"], "already exists"),
    ([*CHAIN, "--out", "{afile}/run"], "is not a folder"),
    ([*CHAIN, "--out", "{dangling}"], "is a dangling link"),
    ([*CHAIN, "--out", "/proc/societal-run"], "is not writable"),
    # resuming
    (["train", "--resume", "{nowhere}"], "is not a run folder"),
    (["train", "--resume", "{badjson}"], "corrupt"),
    (["train", "--resume", "{nolast}"], "has no checkpoint last.pt"),
    (["train", "--resume", "{otherenv}"], "does not belong to"),
    (["train", "--resume", "{noweights}"], "noweights/checkpoints/last.pt does not fit this run's agent: Missing key"),
    (["train", "--resume", "{wideweights}"], "last.pt does not fit this run's agent: size mismatch for theta"),
    (["train", "--resume", "{noppo}"], "noppo/checkpoints/last.pt does not fit this run: resume.ppo is missing"),
    (["train", "--resume", "{smallppo}"],
     "last.pt does not fit this run: resume.ppo.m is float32 of shape (1,), where float32 of shape (2, 275) is needed"),
    (["train", "societal/Chain-v0", "--resume", "{chain}"], "not both"),
    (["train"], "give an environment to train on"),
    (["train", "--resume", "{chain}", "--preset", "general"], "a resumed run keeps its preset"),
    (["train", "--resume", "{chain}", "--set", "entropy=0.2"], "only steps, max_auction_steps"),
    # evaluation, config.json and checkpoints
    (["eval", "{nowhere}"], "is not a run folder"),
    (["eval", "{chain}", "--checkpoint", "first"], "invalid choice: 'first'"),
    (["eval", "{chain}", "--episodes", "0"], "--episodes must be at least 1"),
    (["eval", "{badjson}"], "corrupt"),
    (["eval", "{unknownkey}"], "unknown config keys ['colour']"),
    (["eval", "{badvalue}"], "gamma must be in (0, 1], got 2.0"),
    (["eval", "{otherenv}"], "does not belong to"),
    (["eval", "{garbage}"], "cannot read checkpoint"),
    (["eval", "{pickle}"], "cannot read checkpoint"),
    (["eval", "{flipped}"], "does not match the digest written with it"),
    (["eval", "{wideweights}"], "wideweights/checkpoints/last.pt does not fit the agent of its agent_spec: size"),
    (["eval", "{nested}"], "maximum recursion depth exceeded"),
    (["eval", "{chain}", "--seed", str(2**64)], "--seed must be in [0, 2³²), got 18446744073709551616"),
    (["eval", "{nolast}"], "has no checkpoint last.pt"),
    # experiments
    (["experiments", "atari"], "invalid choice: 'atari'"),
    (["experiments", "chain", "--seeds", "0"], "--seeds must be at least 1"),
    (["experiments", "chain", "--for-real", "--cpus-per-run", "0", "--root", "{nowhere}"],
     "--cpus-per-run must be positive"),
    (["experiments", "chain", "--first-seed", "-1"], "--first-seed must be 0 or more, got -1"),
    (["experiments", "chain", "--scale", "0"], "--scale must be positive"),
    (["experiments", "tworooms", "--only", "blue"], "unknown condition blue for tworooms; allowed: option-red"),
    (["experiments", "tworooms", "--only", "blue-society", "--for-real"], "which neither exist nor are among them"),
    (["experiments", "chain", "--max-wall-s", "-5"], "max_wall_s must be 0 or positive, got -5.0"),
    (["experiments", "chain", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["experiments", "markets", "--report", "--root", "{nowhere}"], "no runs of 'markets'"),
    # sweep and report
    (["sweep", "no/Such-v0", "--out", "{nowhere}"], "unknown environment 'no/Such-v0'"),
    (["sweep", "societal/Chain-v0", "--grid", "foo=1,2", "--out", "{nowhere}"], "unknown setting foo"),
    (["sweep", "societal/Chain-v0", "--grid", "mechanism", "--out", "{nowhere}"], "expected key=value1,value2"),
    (["sweep", "societal/Chain-v0", "--grid", "mechanism=ccv,xx", "--out", "{nowhere}"], "unknown mechanism 'xx'"),
    (["sweep", "societal/Chain-v0", "--seeds", "0", "--out", "{nowhere}"], "--seeds must be at least 1"),
    (["sweep", "societal/Chain-v0", "--cpus-per-run", "0", "--out", "{nowhere}"], "--cpus-per-run must be positive"),
    (["sweep", "societal/Chain-v0", "--grid", "mechanism=ccv", "--grid", "mechanism=bb", "--out", "{nowhere}"],
     "--grid mechanism is given more than once"),
    (["sweep", "societal/Chain-v0", "--grid", "seed=0,1", "--out", "{nowhere}"], "seeds are not a grid setting"),
    (["sweep", "societal/Chain-v0", "--set", "seed=3", "--out", "{nowhere}"], "seeds are set by --seeds N"),
    (["sweep", "societal/Chain-v0", "--grid", "gamma=0.9,0.90", "--out", "{nowhere}"],
     "--grid gamma has the value 0.9 twice"),
    (["sweep", "societal/Chain-v0", "--grid", "hidden=(32,32),(16,", "--out", "{nowhere}"], "unbalanced brackets"),
    (["sweep", "societal/Chain-v0", "--out", "{afile}"], "is a file; the sweep needs a folder"),
    (["sweep", "societal/Chain-v0", "--resume", "--out", "{chain}"], "holds no sweep to resume"),
    (["report", "{nowhere}"], "no runs under"),
    (["report", "{emptymetrics}"], "metrics.csv: it is empty"),
    (["report", "{textmetrics}"], "metrics.csv is not a run's metrics.csv: could not convert string to float"),
    (["report", "{chain}/checkpoints"], "no folder there holds a metrics.csv"),
]


def snapshot(*folders):
    return sorted((p, p.stat().st_size) for f in folders for p in f.rglob("*") if not p.is_symlink())


@pytest.mark.parametrize("argv,message", CLI, ids=[" ".join(a)[:60] for a, _ in CLI])
def test_bad_command_line_input_is_one_line_exit_2_and_writes_nothing(argv, message, runs, capsys, tmp_path,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(**{p.name: p for p in runs.iterdir()}, nowhere=runs / "nowhere") for a in argv]
    before = snapshot(tmp_path, runs)
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert message in err
    assert snapshot(tmp_path, runs) == before, "nothing may be written"


API = [
    (lambda r: societal.train("societal/Chain-v0", gamma=2.0), "gamma must be in (0, 1]"),
    (lambda r: societal.train("societal/Chain-v0", colour="red"), "unknown setting colour"),
    (lambda r: societal.train("societal/Chain-v0", preset="fast"), "unknown preset 'fast'"),
    (lambda r: societal.train("societal/Chain-v0", hidden=[0]), "hidden must be one or more positive sizes"),
    (lambda r: societal.train("societal/Chain-v0", env_kwargs={"length": "six"}), "length must be an integer"),
    (lambda r: societal.train(resume=r / "nowhere"), "is not a run folder"),
    (lambda r: societal.train(resume=r / "chain", gamma=0.5), "a resumed run keeps its settings"),
    (lambda r: societal.load(r / "garbage"), "cannot read checkpoint"),
    (lambda r: societal.load(r / "chain", "first"), "unknown checkpoint 'first'"),
]


@pytest.mark.parametrize("call,message", API, ids=[m for _, m in API])
def test_bad_python_input_raises_one_clear_societal_error(call, message, runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path, runs)
    with pytest.raises(SocietalError, match=None) as caught:
        call(runs)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert snapshot(tmp_path, runs) == before


def test_there_are_at_least_sixty_bad_inputs():
    assert len(CLI) + len(API) >= 60


@pytest.mark.parametrize("argv", [["eval", "{chain}", "--episodes", str(10**11)],
                                  [*CHAIN, "--num-envs", str(10**11), "--set", f"auction_steps_per_update={10**11}"]])
def test_asking_for_more_memory_than_there_is_is_one_line_exit_1(argv, runs, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main([a.format(chain=runs / "chain") for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "not enough memory" in err, err


def test_a_plot_that_cannot_be_written_is_one_line_exit_1(runs, capsys, tmp_path):
    shutil.copytree(runs / "chain", tmp_path / "a")
    shutil.copytree(runs / "chain", tmp_path / "b")
    (tmp_path / "returns.png").mkdir()  # where report draws its curves
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"cannot write {tmp_path / 'returns.png'}" in err
