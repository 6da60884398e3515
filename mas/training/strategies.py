"""Optimisation strategies: how a policy's parameters are updated. `torch` = one process, one device,
AdamW with gradient clipping. (DeepSpeed ZeRO comes as another strategy behind the same methods.)"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class OptimizerSettings:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping


class TorchStrategy:
    def __init__(self, model: torch.nn.Module, settings: OptimizerSettings):
        self.model = model
        self.settings = settings
        self.optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=settings.lr,
            betas=tuple(settings.betas),
            eps=settings.eps,
            weight_decay=settings.weight_decay,
        )

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> float:
        """Clip, step; returns the gradient norm before clipping."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = self.settings.grad_clip if self.settings.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm) if params else torch.tensor(0.0)
        self.optimizer.step()
        return float(norm)

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)
