"""Qualitative output: an evaluation episode as a PNG strip, one panel per auction (or choice).

Each panel shows the rendered state, the winning primitive, and every bidder's bid (a society) or
the probability of each primitive (a monolithic policy).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from societal.environments.vector import make_vec
from societal.run import Run
from societal.society import Society


@torch.no_grad()
def episode_strip(run: Run, path: Path, seed: int = 0, max_auctions: int = 12) -> Path:
    """Play one evaluation episode of ``run`` (rendering with ``rgb_array``) and save it as a strip."""
    from societal.learning.trainer import make_primitives

    agent, config = run.agent, run.config
    device = next(agent.parameters()).device
    env = make_vec(config.env, {**config.env_kwargs, "render_mode": "rgb_array"}, 1, device)
    primitives = make_primitives(config, agent.num_primitives, device)
    panels = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        obs = env.reset(seed=seed)
        for _ in range(max_auctions):
            frame = env.envs[0].render()
            if isinstance(agent, Society):
                scores = agent.bid(obs)[0]
                chosen = agent.primitive_of[scores.argmax()].view(1)
            else:
                scores = torch.softmax(agent.logits(obs)[0, 0], -1)
                chosen = torch.distributions.Categorical(probs=scores).sample().view(1)
            tr = primitives.apply(env, obs, chosen)
            panels.append((frame, scores.cpu().numpy(), int(chosen), float(tr.env_return), int(tr.duration)))
            obs = tr.obs
            if tr.terminated.any() or tr.truncated.any():
                break
    fig, axes = plt.subplots(2, len(panels), figsize=(2.6 * len(panels), 5), squeeze=False)
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
    plt.close(fig)
    return path
