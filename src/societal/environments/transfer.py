"""The transfer tasks of the follow-up paper (Chang, Kaushik, Levine, Griffiths, "Modularity in Reinforcement
Learning via Algorithmic Independence in Credit Assignment", ICML 2021, §6), with the tables of its code.

A task is a small graph over nodes (state, key). The actions are letters (A–F; A–D in the invariance tasks);
an action listed at a node moves to the node named, every other action stays. One (node, action) pays 0.8 and
ends the episode (other moves may end it for nothing); episodes are truncated after 10 steps. The agent sees a
node two-hot: one slot per state, then one per key (none for key −1). A transfer task changes few decisions of
its pretraining task, e.g. the linear chain A → B → C becomes A → B → D (the last decision), A → E → C (the
middle) or F → B → C (the first).

Some families pretrain on two tasks at once (common ancestor: AB and AC, whose first decisions are the same
and lead on to different nodes). The follow-up draws one of them per batch of 4,096 steps; here each episode
draws one, and the agent is not told which (a deviation: every batch then holds both tasks).
"""

from __future__ import annotations

import numpy as np

from societal.environments.graphs import GRAPHS, HORIZON, REWARD, named
from societal.environments.tabular import Bandit, TabularEnv


class GraphTask(TabularEnv):
    """One of ``GRAPHS``: a table over (graph, node) pairs; the agent sees the node two-hot, not the graph."""

    def __init__(self, name: str, render_mode=None) -> None:
        if name not in GRAPHS:
            raise ValueError(f"unknown task {name!r}; allowed: {', '.join(GRAPHS)}")
        graphs, num_states, num_keys, letters = GRAPHS[name]
        nodes = [(g, node) for g, graph in enumerate(graphs) for node in named(graph)]
        index = {pair: i for i, pair in enumerate(nodes)}
        n, m = len(nodes), len(letters)
        next_state = np.tile(np.arange(n)[:, None], (1, m))
        reward, terminal = np.zeros((n, m)), np.zeros((n, m), bool)
        for g, graph in enumerate(graphs):
            for node, moves in graph.moves.items():
                for letter, to in moves.items():
                    next_state[index[g, node], letters.index(letter)] = index[g, to]
                    terminal[index[g, node], letters.index(letter)] = to in graph.ends
            goal, letter = graph.goal
            reward[index[g, goal], letters.index(letter)] = REWARD
        features = np.zeros((n, num_states + num_keys), np.float32)
        for i, (_, (state, key)) in enumerate(nodes):
            features[i, state] = 1
            if key >= 0:
                features[i, num_states + key] = 1
        start = np.zeros(n)
        start[[index[g, graph.start] for g, graph in enumerate(graphs)]] = 1 / len(graphs)
        super().__init__(next_state, reward, terminal, start, HORIZON, render_mode=render_mode, features=features)
        self.name, self.nodes, self.action_names = name, nodes, tuple(letters)


class BanditTransfer(Bandit):
    """The follow-up's bandit transfer: the arms of ``Bandit`` (0.2, 0.4, 0.6, 0.8) paid as 0.8, 0.4, 0.6, 0.2."""

    def __init__(self, render_mode=None) -> None:
        super().__init__(4, [0.8, 0.4, 0.6, 0.2], render_mode)
