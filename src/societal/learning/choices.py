"""PPO samples by generalised advantage estimation for whoever chooses by a policy: the monolithic baseline's
rollouts (``MonolithicCollector``) and the trainable options' inner steps (``option_samples``)."""

from __future__ import annotations

import torch
from torch import Tensor

from societal.learning.collecting import Collected, Collecting
from societal.learning.ppo import Samples
from societal.monolithic import Monolithic
from societal.primitives import Options


def gae(reward: Tensor, discount: Tensor, value: Tensor, next_value: Tensor, terminated: Tensor,
        done: Tensor, lam: float) -> Tensor:
    """Generalised advantage estimates ``[T, B]`` of a semi-MDP rollout (options: a step lasts τ env steps).

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


class MonolithicCollector(Collecting):
    """Keeps a batch of environments running; a rollout of ``steps`` choices becomes PPO samples."""

    def __init__(self, agent: Monolithic, primitives, env, gamma: float, lam: float, reward_scale: float = 1.0,
                 reward_shift: float = 0.0, seed: int | None = None, reward_end: float = 0.0) -> None:
        self.agent, self.primitives, self.env, self.gamma, self.lam = agent, primitives, env, gamma, lam
        self.scale, self.shift, self.end = reward_scale, reward_shift, reward_end
        self.start_episodes(seed)

    @torch.no_grad()
    def gather(self, steps: int) -> Collected:
        """``steps`` choices in every environment as PPO samples; the continuation is V where each step ended."""
        log = {k: [] for k in ("obs", "action", "reward", "duration", "terminated", "done", "final")}
        for _ in range(steps):
            action = self.agent.act(self.obs)
            tr = self.primitives.apply(self.env, self.obs, action)
            done = tr.terminated | tr.truncated
            self.count(tr.env_return, done)
            for k, v in (("obs", self.obs), ("action", action), ("reward", tr.reward), ("duration", tr.duration),
                         ("terminated", tr.terminated), ("done", done), ("final", tr.final_obs)):
                log[k].append(v)
            self.obs = tr.obs
        r = {k: torch.stack(v) for k, v in log.items()}
        t, b = r["action"].shape
        obs = r["obs"].flatten(0, 1)
        value = self.agent.values(obs)[0].view(t, b)
        next_value = self.agent.values(r["final"].flatten(0, 1))[0].view(t, b)  # where each step ended
        paid = self.scale * r["reward"] + self.shift + self.end * r["terminated"]
        advantage = gae(paid, self.gamma ** r["duration"], value, next_value, r["terminated"], r["done"], self.lam)
        samples = Samples(obs, r["action"].view(1, -1).float(), (advantage + value).view(1, -1),
                          advantage.view(1, -1), torch.ones(1, t * b, dtype=torch.bool, device=obs.device))
        return Collected(samples, self.recent_returns(), int(r["done"].sum()), int(r["duration"].sum().item()),
                         next_value, {})


@torch.no_grad()
def option_samples(options: Options, lam: float, continuation: Tensor) -> Samples:
    """PPO samples of the trainable options' inner steps since the last call; option k learns from its own steps.

    An option works for whoever chose it: GAE runs within each option call on the environment's
    reward, and a call that ends without the episode terminating is bootstrapped with
    ``continuation [T, B]``, the chooser's value of the state where call t of environment b ended
    (a society's primitive: what it gets for that state at the next auction; a monolithic policy:
    its value there). The 2020 code bootstrapped with the value function of the option that ran
    next, a sub-task value that is not earned on the task at hand.
    """
    env, obs, action, reward, terminated, ended, final, option, call = (torch.cat(x) for x in zip(*options.steps))
    sizes = [len(step[0]) for step in options.steps]
    options.steps, options.calls = [], 0
    rows, gamma = torch.arange(len(env), device=env.device), options.gamma
    value = torch.cat([options.net.values(o) for o in obs.split(8192)], 1)[option, rows]
    next_value = torch.cat([options.net.values(o) for o in final.split(8192)], 1)[option, rows]
    next_value = torch.where(ended, continuation[call, env], next_value)
    delta = reward + gamma * next_value * ~terminated - value
    advantage, carry = torch.empty_like(delta), torch.zeros(int(env.max()) + 1, device=env.device)
    for d, e, end, a in zip(*(x.split(sizes)[::-1] for x in (delta, env, ended, advantage))):
        a.copy_(d + gamma * lam * ~end * carry[e])  # each environment's next inner step is later
        carry[e] = a
    k, n = options.num_primitives, len(env)
    return Samples(obs, action.float().expand(k, n), (advantage + value).expand(k, n), advantage.expand(k, n),
                   torch.nn.functional.one_hot(option, k).t().bool())
