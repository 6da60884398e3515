"""Multi-agent estimators: turn-level returns normalized per agent / seat / env."""
from __future__ import annotations

from typing import Sequence

import torch

from mas.records import TurnBatch

from . import register_estimator
from .common import EPS, dense_index, group_normalize, reward_to_go, row_keys, to_advantages


def _column_names(value, option: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    try:
        names = tuple(value)
    except TypeError:
        raise ValueError(f"{option} must be a list of column names, got {value!r}") from None
    if not all(isinstance(n, str) for n in names):
        raise ValueError(f"{option} must be a list of column names, got {list(names)!r}")
    return names


@register_estimator("mars")
def mars(
    batch: TurnBatch,
    *,
    gamma: float = 1.0,
    norm_by: Sequence[str] = ("env", "seat"),
    unbiased: bool = False,
) -> torch.Tensor:
    """MARS, turn-level advantage with agent-specific normalization (arXiv:2510.15414).

    `G_i = sum_{j: same (e, p), t(j) >= t(i)} gamma^(t(j) - t(i)) * r(j)`: the discounted sum of the
    seat's own turn rewards from this turn on (t = the seat's turn index, gamma per turn).
    `A_i = (G_i - mu_K) / (sigma_K + eps)`, with mu_K, sigma_K over every row of the batch whose
    `norm_by` columns (default (env, seat); seat = agent in workflows) equal row i's, one value per row.
    eps = 1e-6; population std unless `unbiased`. A key with one row, or whose G are all equal, gives 0.
    An empty `norm_by` normalizes over the whole batch.
    """
    gamma = float(gamma)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"mars: gamma must be in [0, 1], got {gamma}")
    names = _column_names(norm_by, "mars: norm_by")
    returns_to_go = reward_to_go(batch, gamma)
    key_index, num_keys = dense_index(row_keys(batch, names))
    adv = group_normalize(returns_to_go, key_index, num_keys, unbiased=bool(unbiased), eps=EPS)
    return to_advantages(adv)
