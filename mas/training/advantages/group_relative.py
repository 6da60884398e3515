"""Group-relative estimators: one return per trajectory, compared within its group."""
from __future__ import annotations

import torch

from mas.records import TurnBatch

from . import register_estimator
from .common import EPS, dense_index, group_normalize, per_trajectory, to_advantages, trajectory_returns


@register_estimator("grpo")
def grpo(batch: TurnBatch, *, scale_by_std: bool = True, unbiased: bool = False) -> torch.Tensor:
    """GRPO, Shao et al. 2024, DeepSeekMath (arXiv:2402.03300), outcome supervision.

    `A_i = (R_i - mu_g) / (sigma_g + eps)`, where R_i = R(e(i), p(i)) is the return of row i's
    trajectory (sum of the rewards of the rows with the same episode and seat), and mu_g, sigma_g are
    the mean and std over the returns of all (episode, seat) trajectories of group g = g(i), one value
    per trajectory (a trajectory with three turns counts once). eps = 1e-6; population std unless
    `unbiased`. `scale_by_std=False` gives `A_i = R_i - mu_g` (Dr. GRPO, arXiv:2503.20783).
    A group with a single trajectory, or whose returns are all equal, gives 0 to its rows.
    Every row of a trajectory gets the same advantage.
    """
    returns, traj_of_row, num_traj = trajectory_returns(batch)
    groups = per_trajectory(batch, "group_id", traj_of_row, num_traj)
    group_of_traj, num_groups = dense_index(groups)
    adv_traj = group_normalize(
        returns, group_of_traj, num_groups, scale_by_std=bool(scale_by_std), unbiased=bool(unbiased),
        eps=EPS,
    )
    return to_advantages(adv_traj[traj_of_row])
