"""GDPO (Liu et al., arXiv:2601.05242, NVIDIA; docs/algorithms.md, `gdpo`): group-normalize each reward
component on its own, then sum and normalize once over the batch."""
from __future__ import annotations

from typing import Sequence

import torch

from mas.records import REWARD_PART_PREFIX, TurnBatch

from . import register_estimator
from .common import column, group_normalize, to_advantages, whiten
from .grpo_family import _trajectory_groups


@register_estimator("gdpo")
def gdpo(batch: TurnBatch, *, weights: dict | None = None, eps: float = 1e-4,
         group_by: Sequence[str] = ("group_id",)) -> torch.Tensor:
    """GDPO, TRL variant. For each reward component c (the `reward__<name>` columns: the shares an
    env names, such as `format` and `invalid`, and `outcome`, the rest), `r_c(tau)` sums it over
    the trajectory's turns; `A_c = (r_c - mean_K r_c) / (std_u,K r_c + eps)` within group K;
    `pre = sum_c w_c A_c`; `A = (pre - mean_B pre) / (std_u,B pre + eps)` over the batch's
    trajectories, each once. `weights` maps component names to w_c (1.0 for any not named).
    With one component (or none: an env that names no shares) it is GRPO on R (std_u, eps), as in TRL.
    Components of a group of one, or constant in their group, contribute 0; a batch of one
    trajectory keeps `pre`."""
    names = [c[len(REWARD_PART_PREFIX):] for c in batch.columns if c.startswith(REWARD_PART_PREFIX)]
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"gdpo: no reward component {unknown[0]!r} in this batch; components: "
                         f"{', '.join(sorted(names)) or 'none (the env names no reward shares)'}")
    returns, traj_of_row, group_of_traj, num_groups = _trajectory_groups(batch, group_by)
    if len(names) < 2:  # TRL's fallback: GRPO on the total (std_u, the same eps)
        return to_advantages(group_normalize(returns, group_of_traj, num_groups, unbiased=True, eps=eps)[traj_of_row])
    num_traj = len(group_of_traj)
    pre = torch.zeros(num_traj, dtype=torch.float64)
    for name in names:
        share = torch.as_tensor(column(batch, REWARD_PART_PREFIX + name), dtype=torch.float64)
        per_traj = torch.zeros(num_traj, dtype=torch.float64).index_add_(0, traj_of_row, share.nan_to_num(0.0))
        pre += float(weights.get(name, 1.0)) * group_normalize(per_traj, group_of_traj, num_groups,
                                                               unbiased=True, eps=eps)
    adv = whiten(pre, unbiased=True, eps=eps) if num_traj >= 2 else pre
    return to_advantages(adv[traj_of_row])
