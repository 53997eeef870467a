"""Independent learners in the society's market, written against the PettingZoo API only.

Each bidder keeps, per state, an estimate of what winning there earns it (its revenue: the utility it
is paid plus the price it paid) and bids that estimate (truthful bidding, which Vickrey-style auctions
reward), or a random bid with probability ε. Estimates start optimistic (1.0) so that every bidder gets
to win and learn. On Chain the bidders of Right learn to outbid those of Left in every state.

    python examples/independent_bidders.py --episodes 400
"""

from __future__ import annotations

import argparse

import numpy as np

from societal.multiagent import AuctionEnv


def train(env: AuctionEnv, episodes: int, seed: int = 0, lr: float = 0.1, epsilon: float = 0.2) -> dict:
    """Per bidder, its estimated revenue of winning in each state."""
    rng = np.random.default_rng(seed)
    states = env.observation_space(env.possible_agents[0]).shape[0]
    value = {a: np.ones(states) for a in env.possible_agents}
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        pending = {a: [] for a in env.agents}  # (state, price paid) of each win not yet paid for
        while env.agents:
            state = {a: int(np.argmax(o)) for a, o in obs.items()}
            bids = {a: np.array([rng.random() if rng.random() < epsilon else value[a][state[a]]], np.float32)
                    for a in env.agents}
            obs, _, _, _, infos = env.step(bids)
            for a, info in infos.items():
                if info["won"]:
                    pending[a].append((state[a], info["paid"]))
                for utility in info["utilities"]:
                    s, paid = pending[a].pop(0)
                    value[a][s] += lr * (utility + paid - value[a][s])
    return value


def greedy_choices(env: AuctionEnv, value: dict) -> list[int]:
    """The primitive that wins each state's auction when every bidder bids its estimate."""
    states = env.observation_space(env.possible_agents[0]).shape[0]
    return [int(np.argmax([value[a][s] for a in env.possible_agents])) % env.num_primitives for s in range(states)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    env = AuctionEnv("societal/Chain-v0", mechanism="ccv")
    value = train(env, args.episodes, args.seed)
    print("winning action in states 0..5 (0 = Left, 1 = Right):", greedy_choices(env, value))
    for a in env.possible_agents:
        print(a, np.round(value[a], 3))


if __name__ == "__main__":
    main()
