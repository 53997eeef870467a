"""The paper's experiments as ``societal train`` commands (the original's ``runner.py --bandit`` etc.)."""

from __future__ import annotations

from pathlib import Path

# name → (env id, env steps, [(condition, extra flags)])
PRESETS: dict[str, tuple[str, int, list[tuple[str, list[str]]]]] = {
    "bandit": ("societal/Bandit-v0", 5_000_000, [
        ("cloned-ccv", ["--mechanism", "ccv", "--dropout"]),
        ("solitary-v", ["--mechanism", "v", "--redundancy", "1", "--dropout"]),
        ("first-price", ["--mechanism", "bb", "--dropout"]),
        ("env-reward", ["--mechanism", "env", "--dropout"]),
    ]),
    "chain": ("societal/Chain-v0", 10_000_000, [
        ("cloned-ccv", ["--mechanism", "ccv"]),
        ("cloned-bb", ["--mechanism", "bb"]),
        ("cloned-v", ["--mechanism", "v"]),
    ]),
    "duality": ("societal/Duality-v0", 3_000_000, [
        ("cloned-ccv", ["--mechanism", "ccv"]),
    ]),
}


def commands(name: str, seeds: int, root: Path) -> list[tuple[Path, list[str]]]:
    """``(output folder, argv after 'societal')`` of every run of experiment ``name``, for seeds 0..seeds-1."""
    env, steps, conditions = PRESETS[name]
    out = []
    for seed in range(seeds):
        for condition, flags in conditions:
            folder = root / name / condition / f"seed{seed}"
            out.append((folder, ["train", env, *flags, "--steps", str(steps), "--seed", str(seed), "--compile",
                                 "--out", str(folder)]))
    return out
