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

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from societal.environments.tabular import Bandit, TabularEnv

Node = tuple[int, int]  # (state, key); key −1: none
REWARD, HORIZON = 0.8, 10


@dataclass(frozen=True)
class Graph:
    """``moves``: letters → next node at each node (other letters stay); the episode starts at ``start`` and ends
    on entering a node of ``ends``; ``goal`` ((node, letter)) pays ``REWARD``."""

    start: Node
    moves: dict[Node, dict[str, Node]]
    goal: tuple[Node, str]
    ends: tuple[Node, ...]


def chain(start: Node, first: str, middle: Node, second: str, last: str, other: str) -> Graph:
    """The follow-up's linear chain: ``first`` at ``start`` leads to ``middle``, ``second`` there to (2, −1),
    where ``last`` pays and ``other`` leads to a detour node (3, k) that returns to (2, −1) (A, B, E, F) or ends
    the episode with nothing (the last's letter)."""
    paid, detour = {"C": (3, 4), "D": (3, 5)}[last], {"C": (3, 4), "D": (3, 5)}[other]
    back = {a: (2, -1) for a in "ABEF"}
    return Graph(start, {start: {first: middle}, middle: {second: (2, -1)},
                         (2, -1): {last: paid, other: detour}, detour: {**back, last: paid}}, ((2, -1), last),
                 ends=(paid,))


def ancestor(start: Node, child: Node, last: str) -> Graph:
    """Common ancestor: A at (0, 0) (B at (0, 1)) leads to ``child`` (1, k), where ``last`` pays."""
    end = {2: (2, 2), 3: (2, 3), 4: (3, 4), 5: (3, 5)}[child[1]]
    return Graph(start, {start: {"AB"[start[1]]: child}, child: {last: end}}, (child, last), (end,))


def descendant(start: Node, last: str) -> Graph:
    """Common descendant: A, B, D, E at (0,0), (0,1), (1,3), (1,4) lead to (2,2) (C pays) or (2,5) (F pays)."""
    node, end = ((2, 2), (3, 2)) if last == "C" else ((2, 5), (3, 5))
    return Graph(start, {start: {"ABCDEF"[start[1]]: node}, node: {last: end}}, (node, last), (end,))


def invariance(start: Node, letter: str, node: Node, last: str, end: Node) -> Graph:
    return Graph(start, {start: {letter: node}, node: {last: end}}, (node, last), (end,))


GRAPHS: dict[str, tuple[tuple[Graph, ...], int, int, str]] = {
    # name → (its graphs, drawn one per episode; states; keys; letters)
    "LinABC": ((chain((0, 0), "A", (1, 2), "B", "C", "D"),), 4, 6, "ABCDEF"),
    "LinABD": ((chain((0, 0), "A", (1, 2), "B", "D", "C"),), 4, 6, "ABCDEF"),
    "LinAEC": ((chain((0, 0), "A", (1, 3), "E", "C", "D"),), 4, 6, "ABCDEF"),
    "LinFBC": ((chain((0, 1), "F", (1, 2), "B", "C", "D"),), 4, 6, "ABCDEF"),
    "ComAncABAC": ((ancestor((0, 0), (1, 2), "C"), ancestor((0, 0), (1, 3), "D")), 4, 6, "ABCDEF"),
    "ComAncDBDC": ((ancestor((0, 1), (1, 2), "C"), ancestor((0, 1), (1, 3), "D")), 4, 6, "ABCDEF"),
    "ComAncABAE": ((ancestor((0, 0), (1, 2), "C"), ancestor((0, 0), (1, 4), "E")), 4, 6, "ABCDEF"),
    "ComAncAEAF": ((ancestor((0, 0), (1, 4), "E"), ancestor((0, 0), (1, 5), "F")), 4, 6, "ABCDEF"),
    "ComDescACBC": ((descendant((0, 0), "C"), descendant((0, 1), "C")), 4, 6, "ABCDEF"),
    "ComDescAFBF": ((descendant((0, 0), "F"), descendant((0, 1), "F")), 4, 6, "ABCDEF"),
    "ComDescDCEC": ((descendant((1, 3), "C"), descendant((1, 4), "C")), 4, 6, "ABCDEF"),
    "ComDescACDC": ((descendant((0, 0), "C"), descendant((1, 3), "C")), 4, 6, "ABCDEF"),
    "InvarV1": ((invariance((0, -1), "A", (2, 0), "C", (3, -1)),), 5, 2, "ABCD"),
    "InvarV2": ((invariance((1, -1), "B", (2, 1), "D", (4, -1)),), 5, 2, "ABCD"),
}


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


def named(graph: Graph) -> list[Node]:
    """The nodes a graph's moves name, in order of appearance."""
    nodes = [graph.start, *graph.moves, *(to for moves in graph.moves.values() for to in moves.values())]
    return list(dict.fromkeys(nodes))


class BanditTransfer(Bandit):
    """The follow-up's bandit transfer: the arms of ``Bandit`` (0.2, 0.4, 0.6, 0.8) paid as 0.8, 0.4, 0.6, 0.2."""

    def __init__(self, render_mode=None) -> None:
        super().__init__(4, [0.8, 0.4, 0.6, 0.2], render_mode)


def register() -> None:
    for name in GRAPHS:
        if f"societal/{name}-v0" not in gym.registry:
            gym.register(id=f"societal/{name}-v0", entry_point="societal.environments.transfer:GraphTask",
                         kwargs={"name": name})
    if "societal/BanditTransfer-v0" not in gym.registry:
        gym.register(id="societal/BanditTransfer-v0", entry_point="societal.environments.transfer:BanditTransfer")
