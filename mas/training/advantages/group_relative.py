"""Group-relative estimators: one return per trajectory, compared within its group."""
from __future__ import annotations

import torch

from mas.records import TurnBatch

from . import register_estimator
from .common import EPS, dense_index, group_normalize, per_trajectory, to_advantages, trajectory_returns
from .common import whiten as _whiten


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


def _centered_returns(batch: TurnBatch, unbiased: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """`R - mu_g` per trajectory (no std division; 0 for degenerate groups) -> (values, row index)."""
    returns, traj_of_row, num_traj = trajectory_returns(batch)
    groups = per_trajectory(batch, "group_id", traj_of_row, num_traj)
    group_of_traj, num_groups = dense_index(groups)
    centred = group_normalize(returns, group_of_traj, num_groups, scale_by_std=False, unbiased=unbiased)
    return centred, traj_of_row


@register_estimator("reinforce_pp")
def reinforce_pp(batch: TurnBatch, *, whiten: bool = True, unbiased: bool = False) -> torch.Tensor:
    """REINFORCE++ with baseline (Hu et al. 2025, arXiv:2501.03262).

    `A_i = R_i - mu_g` (mu_g over the trajectory returns of group g, one value per trajectory, as in
    grpo; 0 for a group of one trajectory or of equal returns), then whitened over every row of the
    batch: `(A - mean) / (std + eps)` (row-weighted). `whiten=False` keeps the centred returns.
    """
    centred, traj_of_row = _centered_returns(batch, bool(unbiased))
    adv = centred[traj_of_row]
    return to_advantages(_whiten(adv, unbiased=bool(unbiased)) if whiten else adv)


@register_estimator("seeupo")
def seeupo(batch: TurnBatch, *, whiten: bool = True, unbiased: bool = False, clamp: float | None = None) -> torch.Tensor:
    """SeeUPO (arXiv:2602.06554) advantages: `A_i = R_i - mu_g` (no std division), then whitened over
    every row of the batch; `clamp: c` then clips to [-c, c] (the SeeUPO code clamps at 3)."""
    centred, traj_of_row = _centered_returns(batch, bool(unbiased))
    adv = centred[traj_of_row]
    if whiten:
        adv = _whiten(adv, unbiased=bool(unbiased))
    if clamp is not None:
        if clamp <= 0:
            raise ValueError(f"seeupo: clamp must be > 0, got {clamp}")
        adv = adv.clamp(-float(clamp), float(clamp))
    return to_advantages(adv)
