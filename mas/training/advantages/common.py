"""Shared helpers for advantage estimators (docs/algorithms.md, "Identities").

Conventions every estimator follows:
- a trajectory is (episode, seat); its return R = sum of the turn rewards of its rows;
- statistics use eps = 1e-6 and the population std (divide by N) unless `unbiased=True` (N - 1);
- a group statistic over one value, or over values with zero spread, gives 0 for its members;
- whitening is `(x - mean) / (std + eps)` over every row of the batch passed.

All maths runs in float64 on CPU; estimators cast the final per-row result to float32.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Hashable, Sequence

import torch

EPS = 1e-6


# --- columns and keys -------------------------------------------------------------------------
def column(batch: Any, name: str) -> list:
    """The values of column `name` as a plain list, or a one-line ValueError naming the columns."""
    columns = list(getattr(batch, "columns", []))
    try:
        data = getattr(batch, name)
    except AttributeError:
        raise ValueError(
            f"TurnBatch has no column {name!r}; columns are: {', '.join(columns)}"
        ) from None
    return data.tolist() if isinstance(data, torch.Tensor) else list(data)


def row_keys(batch: Any, names: Sequence[str]) -> list[tuple]:
    """One tuple per row made of the values of `names` (an empty `names` puts every row in one key)."""
    cols = [column(batch, n) for n in names]
    return list(zip(*cols)) if cols else [()] * len(batch)


def dense_index(keys: Sequence[Hashable]) -> tuple[torch.Tensor, int]:
    """Map each key to 0..G-1 (numbered by first appearance) -> (index per element, G)."""
    ids: dict[Hashable, int] = {}
    index = [ids.setdefault(k, len(ids)) for k in keys]
    return torch.tensor(index, dtype=torch.long), len(ids)


# --- group statistics -------------------------------------------------------------------------
def group_stats(
    values: torch.Tensor, index: torch.Tensor, num_groups: int, *, unbiased: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per group: (mean, std, count, degenerate). `values` are float64, one entry per member;
    `degenerate` marks groups of one member or with zero spread (max == min)."""
    values = values.to(torch.float64)
    count = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, index, torch.ones_like(values))
    total = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, index, values)
    mean = total / count.clamp(min=1)
    sq = (values - mean[index]) ** 2
    ss = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, index, sq)
    denom = (count - 1) if unbiased else count
    std = (ss / denom.clamp(min=1)).sqrt()
    vmax = torch.full((num_groups,), -torch.inf, dtype=torch.float64).scatter_reduce(
        0, index, values, "amax"
    )
    vmin = torch.full((num_groups,), torch.inf, dtype=torch.float64).scatter_reduce(
        0, index, values, "amin"
    )
    # Exact equality, not std < tol: identical returns are the case the rule is about.
    degenerate = (count < 2) | (vmax == vmin)
    return mean, std, count, degenerate


def group_normalize(
    values: torch.Tensor,
    index: torch.Tensor,
    num_groups: int,
    *,
    scale_by_std: bool = True,
    unbiased: bool = False,
    eps: float = EPS,
) -> torch.Tensor:
    """`(x - mean_g) / (std_g + eps)` per member (or `x - mean_g` without `scale_by_std`), with 0 for
    members of a group of one value or of zero spread. Float64, same shape as `values`."""
    values = values.to(torch.float64)
    if values.numel() == 0:
        return values
    mean, std, _, degenerate = group_stats(values, index, num_groups, unbiased=unbiased)
    out = values - mean[index]
    if scale_by_std:
        out = out / (std[index] + eps)
    return out.masked_fill(degenerate[index], 0.0)


def whiten(values: torch.Tensor, *, unbiased: bool = False, eps: float = EPS) -> torch.Tensor:
    """`(x - mean) / (std + eps)` over all entries (row-weighted); one value or zero spread -> 0."""
    index = torch.zeros(values.numel(), dtype=torch.long)
    return group_normalize(values.reshape(-1), index, 1, unbiased=unbiased, eps=eps)


# --- trajectories -----------------------------------------------------------------------------
def trajectory_index(batch: Any) -> tuple[torch.Tensor, int]:
    """Trajectory (episode, seat) id per row, numbered 0..T-1 -> (index, T)."""
    return dense_index(row_keys(batch, ("episode_id", "seat")))


def trajectory_returns(batch: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
    """-> (R per trajectory [T] float64, trajectory index per row [N], T).
    R(e, p) = sum of the rewards of the rows with that episode and seat."""
    index, num = trajectory_index(batch)
    reward = torch.as_tensor(column(batch, "reward"), dtype=torch.float64)
    returns = torch.zeros(num, dtype=torch.float64).index_add_(0, index, reward)
    return returns, index, num


RETURN_BOUND_TOL = 1e-6
"""How far past a bound a trajectory return may lie and still count as on it, relative to the width
of the bounds (max_reward - min_reward; max(1, |bound|) for a one-sided bound). A return that
equals a bound can sum past it: rewards are stored as float32, so three turns of 1/3 give
1.00000003. A miss wider than this is a reward outside the bounds."""


def bounded_returns(returns: torch.Tensor, low: float, high: float,
                    error: Callable[[float, float], str]) -> torch.Tensor:
    """`returns` clamped onto [low, high] (either may be infinite). A return further than
    RETURN_BOUND_TOL past a bound raises ValueError(error(lowest return, highest return)), one line
    that names the option to change: an estimator that rescales returns by its bounds to a success
    rate in [0, 1] (or compares them with its best payoff) is wrong on returns outside them."""
    if not returns.numel():
        return returns
    finite = [abs(b) for b in (low, high) if math.isfinite(b)]
    width = high - low if len(finite) == 2 else max([1.0, *finite])
    slack = RETURN_BOUND_TOL * width
    lowest, highest = float(returns.min()), float(returns.max())
    if lowest < low - slack or highest > high + slack:
        raise ValueError(error(lowest, highest))
    return returns.clamp(min=low, max=high)


def per_trajectory(batch: Any, name: str, index: torch.Tensor, num: int) -> list:
    """The value of column `name` for each trajectory; a trajectory whose rows disagree on it
    (e.g. two group ids) is a data error, reported in one line."""
    values = column(batch, name)
    out: list = [None] * num
    for row, (t, v) in enumerate(zip(index.tolist(), values)):
        if out[t] is None:
            out[t] = v
        elif out[t] != v:
            ep, seat = column(batch, "episode_id")[row], column(batch, "seat")[row]
            raise ValueError(
                f"trajectory (episode {ep}, seat {seat}) has rows with different {name}: "
                f"{out[t]!r} and {v!r}"
            )
    return out


def reward_to_go(batch: Any, gamma: float) -> torch.Tensor:
    """Per row `G_i = sum over rows j of the same (episode, seat) with t(j) >= t(i) of
    gamma^(t(j) - t(i)) * r(j)`, t = the seat's turn index. Float64 [N]."""
    index, num = trajectory_index(batch)
    turns = column(batch, "turn")
    rewards = column(batch, "reward")
    rows_of: list[list[int]] = [[] for _ in range(num)]
    for row, t in enumerate(index.tolist()):
        rows_of[t].append(row)
    out = [0.0] * len(turns)
    for rows in rows_of:
        rows.sort(key=lambda r: turns[r])
        acc, later_turn = 0.0, None
        for r in reversed(rows):
            if later_turn is not None:
                if turns[r] == later_turn:
                    ep, seat = column(batch, "episode_id")[r], column(batch, "seat")[r]
                    raise ValueError(
                        f"trajectory (episode {ep}, seat {seat}) has two rows with turn {turns[r]}"
                    )
                acc *= gamma ** (later_turn - turns[r])
            acc += float(rewards[r])
            out[r] = acc
            later_turn = turns[r]
    return torch.tensor(out, dtype=torch.float64)


def to_advantages(values: torch.Tensor) -> torch.Tensor:
    """The estimator output contract: float32, 1-D."""
    return values.reshape(-1).to(torch.float32)
