"""Multi-agent estimators: turn-level returns normalized per agent / seat / env."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from mas.records import TurnBatch

from . import register_estimator
from .common import EPS, dense_index, group_normalize, per_trajectory, reward_to_go, row_keys, to_advantages
from .common import trajectory_returns
from .common import whiten as whiten_rows


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


@register_estimator("drmas")
def drmas(batch: TurnBatch, *, scale_by_std: bool = True, unbiased: bool = False) -> torch.Tensor:
    """Dr. MAS agent-wise normalization (arXiv:2602.08847).

    `A_i = (R_i - mu_{g,k}) / (sigma_{g,k} + eps)`, R_i the return of row i's trajectory, with the
    statistics over all rows of agent k = k(i) in group g = g(i), one value per row: an agent that
    acts three times in an episode counts three times, and in self-play both seats of the agent pool
    together. A (group, agent) with one row or equal returns gives 0. The Dr. MAS code uses the
    unbiased std (`unbiased=True`). `scale_by_std=False` keeps only the centring.
    """
    returns, traj_of_row, _ = trajectory_returns(batch)
    key_index, num_keys = dense_index(row_keys(batch, ("group_id", "agent")))
    adv = group_normalize(returns[traj_of_row], key_index, num_keys, scale_by_std=bool(scale_by_std),
                          unbiased=bool(unbiased), eps=EPS)
    return to_advantages(adv)


def _functional_group_of(agents: list[str], groups: Mapping[str, Sequence[str]]) -> list[str]:
    """The functional group of each trajectory's agent; every agent must be in exactly one."""
    member_of: dict[str, str] = {}
    for name, members in groups.items():
        for agent in ([members] if isinstance(members, str) else members):
            if agent in member_of:
                raise ValueError(f"advevo: agent {agent!r} is in two groups: {member_of[agent]!r} and {name!r}")
            member_of[agent] = name
    missing = sorted({a for a in agents if a not in member_of})
    if missing:
        raise ValueError(f"advevo: agent {missing[0]!r} is in no group; groups: {dict(groups)}")
    return [member_of[a] for a in agents]


@register_estimator("advevo")
def advevo(
    batch: TurnBatch,
    *,
    groups: Mapping[str, Sequence[str]] | None = None,
    whiten: bool = True,
    unbiased: bool = False,
) -> torch.Tensor:
    """AdvEvo-MARL public baseline per functional group (arXiv:2510.01586).

    `groups` maps each functional group to its agents (e.g. {attackers: [...], defenders: [...]});
    without it, the agents' `group` from the config (batch column `agent_group`) is used.
    `b_{g,F} = mean R(e, p)` over the trajectories of group g whose agent is in F (one value per
    trajectory); `A_i = R_i - b_{g,F(k(i))}` (0 when that baseline is over one trajectory or equal
    returns); then whitened over every row of the batch (`whiten`, default true).
    """
    returns, traj_of_row, num_traj = trajectory_returns(batch)
    agents = per_trajectory(batch, "agent", traj_of_row, num_traj)
    if groups is None:
        functional = per_trajectory(batch, "agent_group", traj_of_row, num_traj)
    else:
        functional = _functional_group_of(agents, groups)
    group_ids = per_trajectory(batch, "group_id", traj_of_row, num_traj)
    key_index, num_keys = dense_index(list(zip(group_ids, functional)))
    centred = group_normalize(returns, key_index, num_keys, scale_by_std=False, unbiased=bool(unbiased))
    adv = centred[traj_of_row]
    return to_advantages(whiten_rows(adv, unbiased=bool(unbiased)) if whiten else adv)
