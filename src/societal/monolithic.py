"""The monolithic baseline: one categorical policy over the primitives, trained with PPO and GAE.

It is the paper's flat baseline (over literal actions), its hierarchical baseline (over options),
and the agent that pre-trains options. It shares the networks, the PPO update and the run outputs
of a society: it is a single learner (K = 1) whose head has one logit per primitive.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from societal.learning.ppo import Samples
from societal.networks import StackedMLP, build


class Monolithic(nn.Module):
    """A categorical policy and a value function over ``num_primitives`` choices."""

    def __init__(self, obs_shape: tuple[int, ...] | list[int], num_primitives: int,
                 hidden: tuple[int, ...] | list[int] = (16,), network: str = "mlp", num_learners: int = 1) -> None:
        super().__init__()
        self.spec = dict(obs_shape=list(obs_shape), num_primitives=num_primitives, hidden=list(hidden),
                         network=network)
        # More than one learner only to run several trained policies in one pass (stacked options).
        self.obs_ndim, self.num_primitives, self.num_learners = len(obs_shape), num_primitives, num_learners
        # The original's categorical policies have a ReLU before their output layer (MLP([d, 16, A])).
        self.encoder, features, self.value_net = build(network, tuple(obs_shape), tuple(hidden), relu_features=True)
        self.head = StackedMLP([features, num_primitives], relu_layers=0)
        self.split = self.encoder.size + self.head.size
        self.theta = nn.Parameter(torch.empty(num_learners, self.split + self.value_net.size))
        with torch.no_grad():
            self.encoder.init_(self.theta[:, : self.encoder.size])
            self.head.init_(self.theta[:, self.encoder.size : self.split])
            self.value_net.init_(self.value_theta)

    @property
    def value_theta(self) -> Tensor:
        return self.theta[:, self.split :]

    def logits(self, obs: Tensor) -> Tensor:
        """``[K, B, P]`` at ``obs [B, *obs_shape]`` (or ``[K, B, *obs_shape]``)."""
        batch_dims = obs.dim() - self.obs_ndim
        features = self.encoder(self.theta[:, : self.encoder.size], obs, batch_dims)
        return self.head(self.theta[:, self.encoder.size : self.split], features, 2)

    def log_prob_entropy(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        log_p = torch.log_softmax(self.logits(obs), -1)
        return log_p.gather(-1, action.long()[..., None])[..., 0], -(log_p.exp() * log_p).sum(-1)

    def values(self, obs: Tensor) -> Tensor:
        return self.value_net(self.value_theta, obs, obs.dim() - self.obs_ndim)[..., 0]

    @torch.no_grad()
    def act(self, obs: Tensor, greedy: bool = False) -> Tensor:
        """A sampled primitive for each observation (``greedy``: the most probable): ``[B]``."""
        logits = self.logits(obs)[0]
        return logits.argmax(-1) if greedy else torch.distributions.Categorical(logits=logits).sample()


def gae(reward: Tensor, discount: Tensor, value: Tensor, next_value: Tensor, terminated: Tensor,
        done: Tensor, lam: float) -> Tensor:
    """Generalised advantage estimates ``[T, B]`` of a semi-MDP rollout (ORIGINAL.md §2.4).

    δ_t = r_t + γ^τ_t · V(s_{t+1}) · (1 − terminated_t) − V(s_t), where s_{t+1} is where step t
    ended (a truncated episode is bootstrapped); A_t = δ_t + γ^τ_t · λ · (1 − done_t) · A_{t+1}.
    """
    delta = reward + discount * next_value * ~terminated - value
    advantage = torch.zeros_like(delta)
    running = torch.zeros_like(delta[0])
    for t in range(len(delta) - 1, -1, -1):
        running = delta[t] + discount[t] * lam * ~done[t] * running
        advantage[t] = running
    return advantage


class MonolithicCollector:
    """Keeps a batch of environments running; a rollout of ``steps`` choices becomes PPO samples."""

    def __init__(self, agent: Monolithic, primitives, env, gamma: float, lam: float, reward_scale: float = 1.0,
                 reward_shift: float = 0.0, seed: int | None = None) -> None:
        self.agent, self.primitives, self.env, self.gamma, self.lam = agent, primitives, env, gamma, lam
        self.scale, self.shift = reward_scale, reward_shift
        self.obs = env.reset(seed=seed)
        self.episode_return = torch.zeros(env.num_envs, device=self.obs.device)

    @torch.no_grad()
    def collect(self, steps: int) -> tuple[Samples, Tensor, int, Tensor]:
        """``(samples, returns of the episodes that ended, env steps, V [T, B] where each step ended)``."""
        log = {k: [] for k in ("obs", "action", "reward", "duration", "terminated", "done", "final", "ended")}
        for _ in range(steps):
            action = self.agent.act(self.obs)
            tr = self.primitives.apply(self.env, self.obs, action)
            done = tr.terminated | tr.truncated
            self.episode_return += tr.env_return
            for k, v in (("obs", self.obs), ("action", action), ("reward", tr.reward), ("duration", tr.duration),
                         ("terminated", tr.terminated), ("done", done), ("final", tr.final_obs),
                         ("ended", self.episode_return.clone())):
                log[k].append(v)
            self.episode_return.masked_fill_(done, 0.0)
            self.obs = tr.obs
        r = {k: torch.stack(v) for k, v in log.items()}
        t, b = r["action"].shape
        obs = r["obs"].flatten(0, 1)
        value = self.agent.values(obs)[0].view(t, b)
        next_value = self.agent.values(r["final"].flatten(0, 1))[0].view(t, b)  # where each step ended
        advantage = gae(self.scale * r["reward"] + self.shift, self.gamma ** r["duration"], value, next_value,
                        r["terminated"], r["done"], self.lam)
        samples = Samples(obs, r["action"].view(1, -1).float(), (advantage + value).view(1, -1),
                          advantage.view(1, -1), torch.ones(1, t * b, dtype=torch.bool, device=obs.device))
        return samples, r["ended"][r["done"]], int(r["duration"].sum().item()), next_value
