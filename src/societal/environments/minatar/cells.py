"""Cell-level tensor helpers for batched MinAtar twins: a game's 10×10 board is a ``[B, 10, 10]`` bool grid
indexed ``[copy, y, x]``, and its entities are ``[B, K]`` slots with coordinates ``x``, ``y`` and an ``alive`` flag."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def spot(x: Tensor, y: Tensor) -> Tensor:
    """``[B, 10, 10]``: one cell per copy, ``(x[b], y[b])``; a cell off the board gives an empty grid."""
    cells = torch.arange(10, device=x.device)
    return (cells[None, :, None] == y[:, None, None]) & (cells[None, None, :] == x[:, None, None])


def paint(x: Tensor, y: Tensor, present: Tensor) -> Tensor:
    """``[B, 10, 10]``: the cells of the present slots of ``[B, K]`` coordinates; cells with x off the board are
    dropped, y must be on it."""
    return board(1, torch.where(present & (x >= 0) & (x <= 9), y * 10 + x, 100))[..., 0]


def board(channels: int, index: Tensor) -> Tensor:
    """``[B, 10, 10, channels]`` set at the flat indices ``index`` (``[B, K]``: ``(y * 10 + x) * channels +
    channel``) of each copy; ``100 * channels`` is a spare cell for the slots to leave out."""
    cells = torch.zeros(index.shape[0], 100 * channels + 1, dtype=torch.bool, device=index.device)
    return cells.scatter_(1, index, True)[:, :-1].view(-1, 10, 10, channels)


def at(grid: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """``[B, K]``: whether each slot's cell is set in ``grid``; for a cell off the board the answer is
    meaningless (callers mask those slots out)."""
    return grid.flatten(1).gather(1, (y * 10 + x).clamp(0, 99))


def first(x: Tensor, y: Tensor, candidate: Tensor, order: Tensor) -> Tensor:
    """``[B, K]``: each candidate slot that no other candidate on its cell precedes in ``order`` (smaller first);
    ``order`` must differ between slots that can share a cell."""
    same_cell = (x[:, :, None] == x[:, None, :]) & (y[:, :, None] == y[:, None, :])
    rival = candidate[:, None, :] & same_cell & (order[:, None, :] < order[:, :, None])
    return candidate & ~rival.any(2)


def shift(grid: Tensor, dx: int = 0, dy: int = 0) -> Tensor:
    """``[B, 10, 10]`` ``grid`` moved one cell along x (``dx`` = ±1) or y (``dy`` = ±1); what leaves is dropped."""
    if dx:
        return F.pad(grid[..., :-1], (1, 0)) if dx > 0 else F.pad(grid[..., 1:], (0, 1))
    return F.pad(grid[:, :-1], (0, 0, 1, 0)) if dy > 0 else F.pad(grid[:, 1:], (0, 0, 0, 1))


def assign(obj: object, mask: Tensor, values: dict[str, Tensor | int | bool]) -> None:
    """Set each named tensor of ``obj`` to ``values[name]`` where ``mask`` holds: ``mask`` is ``[B]`` (whole
    copies) or ``[B, K]`` (slots of ``[B, K]`` fields)."""
    for name, value in values.items():
        old = getattr(obj, name)
        where = mask.view(*mask.shape, *[1] * (old.dim() - mask.dim()))
        setattr(obj, name, torch.where(where, value, old))
