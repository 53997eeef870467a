"""Qualitative output: an evaluation episode as a PNG strip, one panel per auction (or choice).

Each panel shows the rendered state, the winning primitive, and every bidder's bid (a society) or
the probability of each primitive (a monolithic policy).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from societal.environments.vector import make_vec
from societal.monolithic import Monolithic
from societal.plots import figure
from societal.run import Run
from societal.society import Society


def choose(agent: Society | Monolithic, obs: Tensor) -> tuple[Tensor, Tensor]:
    """``(scores, choice)`` at ``obs``: every bidder's bid and the winner's primitive (a society), or each
    primitive's probability and a sampled one (a monolithic policy)."""
    if isinstance(agent, Society):
        bids = agent.bid(obs)
        return bids, agent.primitive_of[bids.argmax(1)]
    probs = torch.softmax(agent.logits(obs)[0], -1)
    return probs, torch.multinomial(probs, 1)[:, 0]


@torch.no_grad()
def episode_strip(run: Run, path: Path, seed: int = 0, max_auctions: int = 12) -> Path:
    """Play one evaluation episode of ``run`` (rendering with ``rgb_array``) and save it as a strip."""
    agent, config = run.agent, run.config
    device = next(agent.parameters()).device
    env = make_vec(config.env, {**config.env_kwargs, **config.eval_env_kwargs, "render_mode": "rgb_array"}, 1, device)
    primitives = run.primitives(device)
    panels = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        obs = env.reset(seed=seed)
        for _ in range(max_auctions):
            frame = env.envs[0].render()
            scores, chosen = choose(agent, obs)
            tr = primitives.apply(env, obs, chosen)
            panels.append((frame, scores[0].cpu().numpy(), int(chosen), float(tr.env_return), int(tr.duration)))
            obs = tr.obs
            if tr.terminated.any() or tr.truncated.any():
                break
    fig, axes = figure(2, len(panels), figsize=(2.6 * len(panels), 5), squeeze=False)
    for t, (frame, scores, chosen, reward, duration) in enumerate(panels):
        axes[0, t].imshow(frame)
        axes[0, t].set_axis_off()
        axes[0, t].set_title(f"auction {t}: primitive {chosen}\nτ={duration}, reward {reward:.2f}", fontsize=8)
        colors = ["C1" if i % agent.num_primitives == chosen else "C0" for i in range(len(scores))]
        axes[1, t].bar(range(len(scores)), scores, color=colors)
        axes[1, t].set(ylim=(0, 1), xticks=range(len(scores)))
        axes[1, t].tick_params(labelsize=7)
    axes[1, 0].set_ylabel("bid of each bidder" if isinstance(agent, Society) else "probability")
    fig.suptitle(f"{config.env}: return {sum(p[3] for p in panels):.2f}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path


@torch.no_grad()
def mental_rotation_report(run: Run, folder: Path, episodes: int = 1000, strips: int = 6,
                           seed: int = 0) -> pd.DataFrame:
    """Evaluation episodes of MentalRotation: which primitive wins at step 1 and step 2 for each
    distortion (``function_table.csv``), and a strip per episode for the first ``strips`` episodes."""
    from societal.environments.mental_rotation import FUNCTIONS

    agent, config = run.agent, run.config
    device = next(agent.parameters()).device
    env = make_vec(config.env, {**config.env_kwargs, **config.eval_env_kwargs}, episodes, device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        images = [env.reset(seed=seed)]
        distortion, label = env.distortion.clone(), env.label.clone()
        choices, bids = [], []
        for _ in range(2):
            b, choice = choose(agent, images[-1])
            _, reward, _, _, final = env.step(choice)
            choices.append(choice)
            bids.append(b)
            images.append(final)
        answer = env.classifier(images[-1]).argmax(-1)
    names = [f"rotate {'ccw' if d < 4 else 'cw'}, then {('up', 'down', 'left', 'right')[d % 4]}" for d in range(8)]
    rows = []
    for d in range(8):
        at = distortion == d
        for step, choice in enumerate(choices, 1):
            counts = torch.bincount(choice[at], minlength=len(FUNCTIONS)).float() / at.sum().clamp(min=1)
            rows.append({"distortion": names[d], "step": step, **dict(zip(FUNCTIONS, counts.tolist())),
                         "reward": reward[at].mean().item()})
    table = pd.DataFrame(rows)
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "function_table.csv", index=False, float_format="%.3f")
    for i in range(min(strips, episodes)):
        fig, axes = figure(1, 5, figsize=(13, 2.8), gridspec_kw={"width_ratios": [1, 1.3, 1, 1.3, 1]})
        for k, image in enumerate(images):
            axes[2 * k].imshow(image[i, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            axes[2 * k].set_axis_off()
        axes[0].set_title(f"input: {int(label[i])} ({names[int(distortion[i])]})", fontsize=8)
        axes[4].set_title(f"classifier says {int(answer[i])}", fontsize=8)
        for k in range(2):
            b, chosen = bids[k][i].cpu().numpy(), int(choices[k][i])
            colors = ["C1" if j % len(FUNCTIONS) == chosen else "C0" for j in range(len(b))]
            axes[2 * k + 1].bar(range(len(b)), b, color=colors)
            axes[2 * k + 1].set(ylim=(0, 1), title=f"step {k + 1}: {FUNCTIONS[chosen]}")
            axes[2 * k + 1].tick_params(labelsize=7)
        fig.tight_layout()
        fig.savefig(folder / f"episode_{i}.png", dpi=80)
    return table
