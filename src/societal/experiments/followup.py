"""The follow-up's modularity benchmark (Chang, Kaushik, Levine, Griffiths, ICML 2021, §6) as ``societal train``
commands: per task family, pretrain on its training task, then train on each transfer task from the pretrained
weights (``--init-from``) and from scratch, for the cloned Vickrey society, monolithic PPO and factorized PPO.
What the runs show is measured by ``societal.experiments.modularity``.
"""

from __future__ import annotations

from pathlib import Path

# family → (pretraining task, transfer tasks); invariance also goes back to V1 after V2 (forgetting)
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "linear": ("LinABC", ("LinABD", "LinAEC", "LinFBC")),
    "common-ancestor": ("ComAncABAC", ("ComAncDBDC", "ComAncABAE", "ComAncAEAF")),
    "common-descendant": ("ComDescACBC", ("ComDescAFBF", "ComDescDCEC", "ComDescACDC")),
    "invariance": ("InvarV1", ("InvarV2",)),
    "bandit": ("Bandit", ("BanditTransfer",)),
}
AGENTS = {"society": ["--agent", "society", "--mechanism", "ccv"], "monolithic": ["--agent", "monolithic"],
          "factorized": ["--agent", "factorized"]}
# The follow-up's networks (two hidden layers of 20); PPO as in the paper.
COMMON = ["--preset", "paper", "--set", "hidden=(20,20)", "--set", "eval_every=10"]
PRETRAIN_STEPS, TRANSFER_STEPS = 2_000_000, 1_000_000


def families(experiment: str) -> list[str]:
    """The families of experiment ``modularity`` (all) or ``modularity-<family>``."""
    return list(FAMILIES) if experiment == "modularity" else [experiment.removeprefix("modularity-")]


def commands(seeds: range, root: Path, scale: float = 1.0, only: list[str] | None = None
             ) -> list[tuple[Path, list[str]]]:
    """``(run folder, argv after 'societal')`` of every run: ``<root>/modularity/<family>/<agent>-<stage>/seed<k>``,
    stages ``pretrain``, ``transfer-<task>``, ``scratch-<task>`` (invariance also ``back-InvarV1``)."""
    out = []
    for family in only or FAMILIES:
        first, transfers = FAMILIES[family]
        stages = [("pretrain", first, PRETRAIN_STEPS, None)]
        for task in transfers:
            stages += [(f"transfer-{task}", task, TRANSFER_STEPS, "pretrain"),
                       (f"scratch-{task}", task, TRANSFER_STEPS, None)]
        if family == "invariance":
            stages.append((f"back-{first}", first, TRANSFER_STEPS, f"transfer-{transfers[0]}"))
        for agent, flags in AGENTS.items():
            for seed in seeds:
                folder = {stage: root / "modularity" / family / f"{agent}-{stage}" / f"seed{seed}"
                          for stage, *_ in stages}
                for stage, task, steps, parent in stages:
                    start = ["--init-from", str(folder[parent])] if parent else []
                    out.append((folder[stage], ["train", f"societal/{task}-v0", *flags, *COMMON, "--steps",
                                                str(max(1, int(steps * scale))), *start, "--seed", str(seed),
                                                "--out", str(folder[stage])]))
    return out
