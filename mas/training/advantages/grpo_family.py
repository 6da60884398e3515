"""More group-normalized trajectory-level estimators (docs/algorithms.md, "Estimators").

Each computes one advantage per trajectory (episode, seat) from its return R (the sum of its turn
rewards), with one entry per trajectory in every group statistic, and gives it to every turn of the
trajectory. Groups are keyed by `group_by`, by default `("group_id",)` as in `grpo`. The papers'
default key adds the seat; with two seats of a self-play game in one group of size 1, that key would
leave every group with one trajectory and every advantage at 0, so mas keeps grpo's key and offers
`group_by=("group_id", "seat")`. A group of one trajectory gives 0 (docs/algorithms.md), not the raw
return some reference code gives.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from mas.records import TurnBatch

from . import LossNeeds, register_estimator
from .common import (EPS, bounded_returns, column, dense_index, group_normalize, group_stats, per_trajectory,
                     to_advantages, trajectory_returns)


def _trajectory_groups(batch: TurnBatch, group_by: Sequence[str]):
    """-> (R per trajectory [T] float64, trajectory per row [N], group per trajectory [T], G)."""
    if not group_by:
        raise ValueError("group_by must name at least one column, e.g. ('group_id',)")
    returns, traj_of_row, num_traj = trajectory_returns(batch)
    keys = list(zip(*(per_trajectory(batch, name, traj_of_row, num_traj) for name in group_by)))
    group_of_traj, num_groups = dense_index(keys)
    return returns, traj_of_row, group_of_traj, num_groups


def _check_range(name: str, returns: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """`returns` clamped onto [low, high]; one just past a bound from float32 rounding is on it
    (common.RETURN_BOUND_TOL), one further out is an error."""
    return bounded_returns(returns, low, high, lambda lo, hi: f"{name}: trajectory returns must lie in "
                           f"[{low:g}, {high:g}], got [{lo:g}, {hi:g}]; rescale the rewards")


@register_estimator("dr_grpo")
def dr_grpo(batch: TurnBatch, *, group_by: Sequence[str] = ("group_id",)) -> torch.Tensor:
    """Dr. GRPO (Liu et al., arXiv:2503.20783): `A = R - mean_K R`, no division by the group's std.
    Its other half, summing the token losses without the per-sequence 1/|o|, is the loss's
    `agg: seq-mean-token-sum-norm` (mas/training/losses.py)."""
    returns, traj_of_row, group_of_traj, num_groups = _trajectory_groups(batch, group_by)
    adv = group_normalize(returns, group_of_traj, num_groups, scale_by_std=False)
    return to_advantages(adv[traj_of_row])


# NGRPO's asymmetric clip (arXiv:2509.18851), looser above than below
@register_estimator("ngrpo", loss=LossNeeds(clip=(0.16, 0.24)))
def ngrpo(batch: TurnBatch, *, max_reward: float = 1.0, virtual_samples: int = 1,
          group_by: Sequence[str] = ("group_id",)) -> torch.Tensor:
    """NGRPO (Nan et al., arXiv:2509.18851), advantage calibration: each group's statistics gain
    `virtual_samples` copies of `max_reward`, and only its statistics:
    `A = (R - mean(S+)) / (std_u(S+) + 1e-6)`, S+ = {R of the group} + {max_reward} x m.
    An all-wrong group then gets negative advantages. The paper's asymmetric clip (0.16 low, 0.24
    high) is the loss's `clip_low` / `clip_high`. `max_reward` must be at least every return."""
    returns, traj_of_row, group_of_traj, num_groups = _trajectory_groups(batch, group_by)
    if virtual_samples < 0:
        raise ValueError(f"ngrpo: virtual_samples must be >= 0, got {virtual_samples}")
    returns = bounded_returns(returns, -math.inf, max_reward, lambda lo, hi: (
        f"ngrpo: max_reward {max_reward:g} is below a trajectory return {hi:g}; set ngrpo's max_reward to the "
        f"game's best payoff"))
    m = int(virtual_samples)
    count = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, group_of_traj, torch.ones_like(returns))
    total = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, group_of_traj, returns) + m * max_reward
    mean = total / (count + m)
    squares = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, group_of_traj, (returns - mean[group_of_traj]) ** 2)
    squares = squares + m * (max_reward - mean) ** 2
    std = (squares / (count + m - 1).clamp(min=1)).sqrt()
    adv = (returns - mean[group_of_traj]) / (std[group_of_traj] + EPS)
    adv = adv.masked_fill(count[group_of_traj] < 2, 0.0)
    return to_advantages(adv[traj_of_row])


def _beta_pdf(x: float, a: float, b: float) -> float:
    log_norm = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    if (x <= 0.0 and a > 1) or (x >= 1.0 and b > 1):
        return 0.0
    return math.exp((a - 1) * math.log(max(x, 1e-300)) + (b - 1) * math.log(max(1 - x, 1e-300)) - log_norm)


@register_estimator("bnpo")
def bnpo(batch: TurnBatch, *, min_reward: float = 0.0, max_reward: float = 1.0,
         group_by: Sequence[str] = ("group_id",)) -> torch.Tensor:
    """BNPO (Xiao et al., arXiv:2506.02864): `A = w_K (x - p_K)`, x = (R - min)/(max - min), p_K the
    group mean of x, `w_K = clamp(1 / BetaPDF(p_K; alpha, beta), 0, 1e6)`. alpha = max(1 + a/3, 1),
    beta = max(1 + b/3, 1), with (a, b) fitted by moments to the group means of this batch:
    p = mean(p_K), v = var_u(p_K), a = (p(1-p)/v - 1) p, b = (p(1-p)/v - 1)(1-p). Only groups of
    two or more trajectories enter the fit; v <= 1e-12 or fewer than two such groups give
    alpha = beta = 1 (our choice; the reference code has no guard)."""
    if max_reward <= min_reward:
        raise ValueError(f"bnpo: max_reward must exceed min_reward, got {min_reward:g} and {max_reward:g}")
    returns, traj_of_row, group_of_traj, num_groups = _trajectory_groups(batch, group_by)
    returns = _check_range("bnpo", returns, min_reward, max_reward)
    x = (returns - min_reward) / (max_reward - min_reward)
    p_group, _, count, _ = group_stats(x, group_of_traj, num_groups)
    fitted = p_group[count >= 2]
    alpha = beta = 1.0
    if fitted.numel() >= 2:
        p_bar, v = float(fitted.mean()), float(fitted.var(unbiased=True))
        if v > 1e-12:
            scale = p_bar * (1 - p_bar) / v - 1
            alpha, beta = max(1 + scale * p_bar / 3, 1.0), max(1 + scale * (1 - p_bar) / 3, 1.0)
    weight = torch.tensor([min(1e6, 1 / max(_beta_pdf(float(p), alpha, beta), 1e-300)) for p in p_group],
                          dtype=torch.float64)
    adv = weight[group_of_traj] * (x - p_group[group_of_traj])
    adv = adv.masked_fill(count[group_of_traj] < 2, 0.0)
    return to_advantages(adv[traj_of_row])


@register_estimator("agrae")
def agrae(batch: TurnBatch, *, base: str = "grpo", accuracy_scale: float = 1.0, min_reward: float = 0.0,
          max_reward: float = 1.0, group_by: Sequence[str] = ("group_id",)) -> torch.Tensor:
    """A-GRAE (Yu et al., arXiv:2602.05548), on returns rescaled to [0, 1] by `min_reward` and
    `max_reward` (a game's -1..1 payoffs: -1 and 1). With A0 the base advantage (GRPO
    with std_u and eps 1e-6, or `base: dr_grpo`), mu_K the group's mean return and mu the mean of
    mu_K over the batch's groups (its accuracy):
    A_hard = 0.5 A0 / (sqrt(mu_K) + eps), A_easy = 0.5 A0 / (1 - sqrt(mu_K) + eps),
    A1 = (1 - mu) A_easy + mu A_hard, and positive A1 is scaled by min(1, mu / accuracy_scale).
    Implemented as the formula, without the reference code's schedule that never fires
    (docs/algorithms.md, `agrae`). Groups of one trajectory get 0 and are left out of mu."""
    if base not in ("grpo", "dr_grpo"):
        raise ValueError(f"agrae: base must be grpo or dr_grpo, got {base!r}")
    if accuracy_scale <= 0:
        raise ValueError(f"agrae: accuracy_scale must be > 0, got {accuracy_scale:g}")
    if max_reward <= min_reward:
        raise ValueError(f"agrae: max_reward must exceed min_reward, got {min_reward:g} and {max_reward:g}")
    returns, traj_of_row, group_of_traj, num_groups = _trajectory_groups(batch, group_by)
    returns = _check_range("agrae", returns, min_reward, max_reward)
    returns = (returns - min_reward) / (max_reward - min_reward)
    a0 = group_normalize(returns, group_of_traj, num_groups, scale_by_std=base == "grpo", unbiased=True)
    mean, _, count, _ = group_stats(returns, group_of_traj, num_groups)
    multi = count >= 2
    accuracy = float(mean[multi].mean()) if bool(multi.any()) else 0.0
    root = mean.sqrt()[group_of_traj]
    hard = 0.5 * a0 / (root + EPS)
    easy = 0.5 * a0 / (1 - root + EPS)
    a1 = (1 - accuracy) * easy + accuracy * hard
    adv = torch.where(a1 > 0, a1 * min(1.0, accuracy / accuracy_scale), a1)
    adv = adv.masked_fill(~multi[group_of_traj], 0.0)
    return to_advantages(adv[traj_of_row])


@register_estimator("mapo")
def mapo(batch: TurnBatch, *, gamma: float = 1.0, mix: float = 0.5, unbiased: bool = True,
         group_by: Sequence[str] = ("group_id",)) -> torch.Tensor:
    """MAPO for multi-turn dialogue (arXiv:2603.06194). **A reconstruction**: only the abstract was
    reachable, so the formula form, `mix`, `gamma` and the std convention are our choices
    (docs/algorithms.md, `mapo`), to be checked against the paper's method section.

    Per turn row i with reward-to-go G_i (over its seat's own turns, discount `gamma`):
    `A_turn` normalizes G_i among the rows of the same group and own-turn index (0 for a set of one),
    `A_batch` among all rows of the batch, each `(G - mean) / (std + 1e-6)` with the N-1 std unless
    `unbiased=False`; `A = mix * A_turn + (1 - mix) * A_batch`."""
    from .common import reward_to_go, row_keys, whiten

    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"mapo: mix must lie in [0, 1], got {mix:g}")
    togo = reward_to_go(batch, float(gamma))
    index, num = dense_index(row_keys(batch, (*group_by, "turn")))
    per_turn = group_normalize(togo, index, num, unbiased=bool(unbiased))
    over_batch = whiten(togo, unbiased=bool(unbiased))
    return to_advantages(mix * per_turn + (1 - mix) * over_batch)


@register_estimator("hapo_tlga")
def hapo_tlga(batch: TurnBatch, *, scale_by_std: bool = True, fallback_at: float = 5.0,
              group_by: Sequence[str] = ("group_id",)) -> torch.Tensor:
    """HAPO's token-level group average (Liu et al., arXiv:2509.16591): each trajectory's return
    counts once per response token (L = its `n_tokens` summed over its turns), so
    `mu = sum L R / sum L`, `sigma = sqrt(sum L (R - mu)^2 / sum L)` and `A = (R - mu) / (sigma + 1e-6)`
    (no std with `scale_by_std=False`): short correct answers weigh more. A group where some |A|
    reaches `fallback_at` uses the plain GRPO advantage (std with N - 1) instead, as the code does."""
    returns, traj_of_row, group_of_traj, num_groups = _trajectory_groups(batch, group_by)
    tokens = torch.as_tensor(column(batch, "n_tokens"), dtype=torch.float64)
    length = torch.zeros_like(returns).index_add_(0, traj_of_row, tokens)
    weight = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, group_of_traj, length)
    mean = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, group_of_traj, length * returns) / weight.clamp(min=1e-12)
    spread = torch.zeros(num_groups, dtype=torch.float64).index_add_(
        0, group_of_traj, length * (returns - mean[group_of_traj]) ** 2)
    adv = returns - mean[group_of_traj]
    if scale_by_std:
        adv = adv / ((spread / weight.clamp(min=1e-12)).sqrt()[group_of_traj] + EPS)
    _, _, count, degenerate = group_stats(returns, group_of_traj, num_groups)
    adv = adv.masked_fill(degenerate[group_of_traj], 0.0)
    too_big = torch.zeros(num_groups, dtype=torch.bool).index_put_((group_of_traj,), adv.abs() >= fallback_at, accumulate=True)
    if bool(too_big.any()):
        plain = group_normalize(returns, group_of_traj, num_groups, unbiased=True)
        adv = torch.where(too_big[group_of_traj], plain, adv)
    return to_advantages(adv[traj_of_row])


@register_estimator("gigpo")
def gigpo(batch: TurnBatch, *, step_weight: float = 1.0, gamma: float = 0.95, mode: str = "mean_norm",
          episode_stats_over: str = "turns", group_by: Sequence[str] = ("group_id",)) -> torch.Tensor:
    """GiGPO (Feng et al., arXiv:2505.10978): `A = A_episode + step_weight * A_step`.

    A_episode: the trajectory return R against the returns of its group K, the statistics taking one
    entry per turn row (`episode_stats_over: turns`, the reference code) or per trajectory (the
    paper). A_step: the turn's discounted reward-to-go G against those of every turn of K that acted
    from the same state (`obs_key`, any trajectory, any turn index): GiGPO's anchor groups. `mode`
    is `mean_norm` (subtract the mean) or `mean_std_norm` (and divide by std_u + 1e-6). A state seen
    once, an unknown state (`obs_key` ""), or a group of one entry gives 0 at that level."""
    if mode not in ("mean_norm", "mean_std_norm"):
        raise ValueError(f"gigpo: mode must be mean_norm or mean_std_norm, got {mode!r}")
    if episode_stats_over not in ("turns", "trajectories"):
        raise ValueError(f"gigpo: episode_stats_over must be turns or trajectories, got {episode_stats_over!r}")
    from .common import reward_to_go

    scale = mode == "mean_std_norm"
    returns, traj_of_row, group_of_traj, num_groups = _trajectory_groups(batch, group_by)
    if episode_stats_over == "turns":
        group_of_row = group_of_traj[traj_of_row]
        episode = group_normalize(returns[traj_of_row], group_of_row, num_groups, scale_by_std=scale, unbiased=True)
    else:
        episode = group_normalize(returns, group_of_traj, num_groups, scale_by_std=scale, unbiased=True)[traj_of_row]
    togo = reward_to_go(batch, float(gamma))
    keys = [(g, k) if k else (g, "unique", row) for row, (g, k) in
            enumerate(zip(group_of_traj[traj_of_row].tolist(), column(batch, "obs_key")))]
    anchor, num_anchors = dense_index(keys)
    step = group_normalize(togo, anchor, num_anchors, scale_by_std=scale, unbiased=True)
    return to_advantages(episode + step_weight * step)


@register_estimator("hgpo")
def hgpo(batch: TurnBatch, *, history: int = 2, alpha: float = 1.0, gamma: float = 0.95,
         mode: str = "mean_std_norm", group_by: Sequence[str] = ("group_id",)) -> torch.Tensor:
    """HGPO (He et al., arXiv:2602.22817): nested anchor groups by context. For a turn at its seat's
    own turn t and depth k = 1..history+1 (k <= t+1), the key is the `obs_key`s of its last k
    states in its trajectory; turns of group K with the same key form a cluster. In each cluster of
    two or more, `a_k = (G - mean) / (std_b + 1e-6)` (`mode: mean_norm`: without the std), G the
    discounted reward-to-go. `A = sum_k w_k a_k` with `w_k = (k+1)^alpha / sum over the turn's
    clusters of (k'+1)^alpha`: deeper, more consistent contexts weigh more. A turn in no cluster of
    two gets 0. Clusters do not depend on row order."""
    if mode not in ("mean_norm", "mean_std_norm"):
        raise ValueError(f"hgpo: mode must be mean_norm or mean_std_norm, got {mode!r}")
    if history < 0:
        raise ValueError(f"hgpo: history must be >= 0, got {history}")
    from .common import reward_to_go

    _, traj_of_row, group_of_traj, _ = _trajectory_groups(batch, group_by)
    togo = reward_to_go(batch, float(gamma))
    turns, keys = column(batch, "turn"), column(batch, "obs_key")
    by_traj: dict[int, list[int]] = {}
    for row, t in enumerate(traj_of_row.tolist()):
        by_traj.setdefault(t, []).append(row)
    cluster_keys, members = [], []  # (group, depth, context) per (row, depth) item
    for t, rows in by_traj.items():
        rows.sort(key=lambda r: turns[r])
        for pos, row in enumerate(rows):
            for depth in range(1, min(history + 1, pos + 1) + 1):
                context = tuple(keys[r] for r in rows[pos - depth + 1 : pos + 1])
                if all(context):  # an unknown state matches nothing
                    cluster_keys.append((int(group_of_traj[t]), depth, context))
                    members.append((row, depth))
    out = torch.zeros(len(turns), dtype=torch.float64)
    if members:
        index, num = dense_index(cluster_keys)
        rows = torch.tensor([r for r, _ in members])
        values = togo[rows]
        mean, std, count, _ = group_stats(values, index, num)
        score = values - mean[index]
        if mode == "mean_std_norm":
            score = score / (std[index] + EPS)
        present = count[index] >= 2
        weight = torch.tensor([(d + 1.0) ** alpha for _, d in members], dtype=torch.float64) * present
        total = torch.zeros_like(out).index_add_(0, rows, weight)
        out.index_add_(0, rows, weight * score)
        out = torch.where(total > 0, out / (total + EPS), torch.zeros_like(out))
    return to_advantages(out)
