"""The graphs of the follow-up paper's transfer tasks (Chang, Kaushik, Levine, Griffiths, ICML 2021, §6), as
plain data: ``societal.environments.transfer`` turns each into a table task. Kept free of torch so that the
tasks can be registered when ``societal`` is imported, at no cost.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def named(graph: Graph) -> list[Node]:
    """The nodes a graph's moves name, in order of appearance."""
    nodes = [graph.start, *graph.moves, *(to for moves in graph.moves.values() for to in moves.values())]
    return list(dict.fromkeys(nodes))
