"""Estimators whose output also steers the loss (docs/algorithms.md, "Loss-side extras"): MC-GRPO masks
one pivot trajectory per group out of the loss; COPO blends a group-level and a trajectory-level
advantage token by token. Called with `return_aux=True` they return those per-row extras; the
training run applies them (mas/run.py), plain `estimate` returns the advantages alone."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from mas.records import TurnBatch

from . import LossNeeds, register_estimator
from .common import group_normalize, group_stats, per_trajectory, to_advantages
from .grpo_family import _trajectory_groups


def _lower_median(values: list[float]) -> float:
    """torch.median's rule: the lower of the two middle values for an even count."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


@register_estimator("mc_grpo", loss=LossNeeds(row_mask=True))
def mc_grpo(batch: TurnBatch, *, scale: str = "mad", mad_eps: float = 1e-3, zero_mad: str = "unscaled",
            rescale_nonzero: bool = False, group_by: Sequence[str] = ("group_id",)):
    """MC-GRPO (Kim, arXiv:2601.22582): per group K, `m = median(R)` (lower middle for an even
    count), `MAD = median(|R - m|)`, `A = (R - m) / (MAD + mad_eps)` (`scale: none`: `R - m`). One
    pivot trajectory per group, the first in episode order whose R equals m, gets loss_mask 0, so
    the loss sees G of the G + 1 samples (set rollout.group_size odd). `rescale_nonzero` multiplies
    each non-zero advantage by n / (number of non-zero ones in the group), as the GSM trainer does.

    MAD = 0 with R not all equal (binary rewards whenever a majority agrees): the reference divides
    by mad_eps alone, giving +-1000 (`zero_mad: eps`); mas's default `zero_mad: unscaled` uses
    `R - m` there, following docs/algorithms.md's rule against blowing up a degenerate statistic.
    A group of one trajectory gets 0 and is masked."""
    if scale not in ("mad", "none"):
        raise ValueError(f"mc_grpo: scale must be mad or none, got {scale!r}")
    if zero_mad not in ("unscaled", "eps"):
        raise ValueError(f"mc_grpo: zero_mad must be unscaled or eps, got {zero_mad!r}")
    returns, traj_of_row, group_of_traj, num_groups = _trajectory_groups(batch, group_by)
    episodes = per_trajectory(batch, "episode_id", traj_of_row, len(returns))
    seats = per_trajectory(batch, "seat", traj_of_row, len(returns))
    members: list[list[int]] = [[] for _ in range(num_groups)]
    for t, g in enumerate(group_of_traj.tolist()):
        members[g].append(t)
    adv = torch.zeros_like(returns)
    keep = torch.ones(len(returns), dtype=torch.bool)
    for trajs in members:
        trajs.sort(key=lambda t: (episodes[t], seats[t]))
        values = [float(returns[t]) for t in trajs]
        m = _lower_median(values)
        keep[next(t for t, r in zip(trajs, values) if r == m)] = False
        if len(trajs) < 2:
            continue
        mad = _lower_median([abs(r - m) for r in values])
        divisor = 1.0
        if scale == "mad":
            divisor = mad + mad_eps if (mad > 0 or zero_mad == "eps") else 1.0
        group_adv = [(r - m) / divisor for r in values]
        if rescale_nonzero:
            nonzero = sum(abs(a) > 1e-6 for a in group_adv)
            group_adv = [a * len(trajs) / nonzero if abs(a) > 1e-6 else a for a in group_adv]
        adv[trajs] = torch.tensor(group_adv, dtype=torch.float64)
    loss_mask = keep[traj_of_row].to(torch.float32)
    return to_advantages(adv[traj_of_row]), {"loss_mask": loss_mask}


COPO_MODES = ("soft with forced", "only soft", "only global", "no global")


@register_estimator("copo", loss=LossNeeds(blend=True))
def copo(batch: TurnBatch, *, mode: str = "soft with forced", b: float = 0.5, k: float = 1.0,
         reward_coef: bool = True, group_by: Sequence[str] = ("group_id",)):
    """COPO (arXiv:2508.04138). Per group K of n trajectories with outcome entropy
    `H = -sum_a p_a log2(p_a + 1e-8)` over their `outcome_key`s (answers, or win/draw/loss):
    `g_K = mean_K(R) * (1 - lambda H)`, `lambda = (1 - 1/n) / log2 n` (`reward_coef: false`:
    `g_K = mean_K R`); `A_glob = (g_K - mean g) / (std_u g + 1e-6)` over the batch's groups, one
    value per group; `A_loc` = GRPO within K (std_u, 1e-6). The loss blends the two clipped terms
    with `w = sigmoid(k (H - b))`: `(1 - w) l(A_glob) + w l(A_loc)`; `mode: soft with forced`
    zeroes w where A_loc = 0 (a consistent group learns from the global term alone), `only soft`
    keeps w, `only global` uses w = 0, `no global` w = 1. The returned advantage is the blend
    `(1 - w) A_glob + w A_loc`, which equals the loss's blend while the ratio is 1 and unclipped;
    aux holds `adv_global`, `adv_local` and `blend_w` per row. The paper's configured b, k and
    mode could not be checked (docs/algorithms.md, `copo`); these are the code's function defaults."""
    if mode not in COPO_MODES:
        raise ValueError(f"copo: mode must be one of {', '.join(map(repr, COPO_MODES))}, got {mode!r}")
    returns, traj_of_row, group_of_traj, num_groups = _trajectory_groups(batch, group_by)
    answers = per_trajectory(batch, "outcome_key", traj_of_row, len(returns))
    mean, _, count, _ = group_stats(returns, group_of_traj, num_groups)
    entropy = torch.zeros(num_groups, dtype=torch.float64)
    tallies: list[dict[str, int]] = [{} for _ in range(num_groups)]
    for g, a in zip(group_of_traj.tolist(), answers):
        tallies[g][a] = tallies[g].get(a, 0) + 1
    for g, tally in enumerate(tallies):
        n = sum(tally.values())
        entropy[g] = -sum((c / n) * math.log2(c / n + 1e-8) for c in tally.values())
    global_score = mean.clone()
    if reward_coef:
        lam = torch.tensor([(1 - 1 / n) / math.log2(n) if n >= 2 else 0.0 for n in count.tolist()],
                           dtype=torch.float64)
        global_score = mean * (1 - lam * entropy)
    groups_index = torch.zeros(num_groups, dtype=torch.long)
    adv_global = group_normalize(global_score, groups_index, 1, unbiased=True)[group_of_traj]
    adv_local = group_normalize(returns, group_of_traj, num_groups, unbiased=True)
    blend = torch.sigmoid(k * (entropy - b))[group_of_traj]
    if mode == "soft with forced":
        blend = blend * (adv_local != 0)
    elif mode == "only global":
        blend = torch.zeros_like(blend)
    elif mode == "no global":
        blend = torch.ones_like(blend)
    effective = (1 - blend) * adv_global + blend * adv_local
    aux = {"adv_global": to_advantages(adv_global[traj_of_row]), "adv_local": to_advantages(adv_local[traj_of_row]),
           "blend_w": to_advantages(blend[traj_of_row])}
    return to_advantages(effective[traj_of_row]), aux
