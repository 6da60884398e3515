"""Estimators that keep state across batches (saved and restored with checkpoints)."""
from __future__ import annotations

from typing import Any

import torch

from mas.records import TurnBatch

from . import register_estimator
from .common import per_trajectory, to_advantages, trajectory_returns


@register_estimator("rae")
class RoleAdvantage:
    """SPIRAL role-conditioned advantage estimation (arXiv:2506.24119).

    One baseline per (env, seat), starting at 0. `A_i = R_i - b_{v,p}` with the baseline as it stood
    before this batch (no std division); then, one update per trajectory in ascending episode id,
    `b <- alpha * b + (1 - alpha) * R` (alpha = 0.95).
    """

    def __init__(self, *, alpha: float = 0.95):
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"rae: alpha must be in [0, 1), got {alpha}")
        self.alpha = float(alpha)
        self.baselines: dict[tuple[str, int], float] = {}

    def __call__(self, batch: TurnBatch, *, return_aux: bool = False):
        returns, traj_of_row, num_traj = trajectory_returns(batch)
        envs = per_trajectory(batch, "env", traj_of_row, num_traj)
        seats = per_trajectory(batch, "seat", traj_of_row, num_traj)
        episodes = per_trajectory(batch, "episode_id", traj_of_row, num_traj)
        keys = list(zip(envs, seats))
        before = torch.tensor([self.baselines.get(k, 0.0) for k in keys], dtype=torch.float64)
        adv = to_advantages((returns - before)[traj_of_row])
        for t in sorted(range(num_traj), key=lambda t: (episodes[t], seats[t])):
            b = self.baselines.get(keys[t], 0.0)
            self.baselines[keys[t]] = self.alpha * b + (1.0 - self.alpha) * float(returns[t])
        return (adv, {}) if return_aux else adv

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "baselines": [[env, seat, b] for (env, seat), b in sorted(self.baselines.items())]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.baselines = {(env, int(seat)): float(b) for env, seat, b in state["baselines"]}

    def __repr__(self) -> str:
        return f"RoleAdvantage(alpha={self.alpha}, baselines={self.baselines})"
