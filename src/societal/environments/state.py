"""Batched environments that save and restore their state, so that a resumed run goes on exactly."""

from __future__ import annotations

import torch


class SavedState:
    """A batched environment whose whole state is the tensors named in ``STATE`` and its random stream
    ``generator``."""

    STATE: tuple[str, ...] = ()
    resumable = True
    device: torch.device
    generator: torch.Generator

    def state_dict(self) -> dict:
        return {**{k: getattr(self, k).clone() for k in self.STATE}, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        for k in self.STATE:
            setattr(self, k, state[k].to(self.device, copy=True))  # stepping must not change the caller's dict
        self.generator.set_state(state["generator"])
