"""Estimators that keep state across batches (saved and restored with checkpoints)."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Callable, Sequence

import torch

from mas.records import Turn, TurnBatch
from mas.training.beta_tracker import BetaTracker

from . import StatefulEstimator, register_estimator
from .common import bounded_returns, per_trajectory, to_advantages, trajectory_returns, whiten


@register_estimator("rae")
class RoleAdvantage(StatefulEstimator):
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


@register_estimator("spo")
class SingleStreamValue(StatefulEstimator):
    """SPO single-stream advantages (Xu & Ding, arXiv:2509.13232; docs/algorithms.md, `spo`).

    A Beta posterior per task key (`key` columns, default env, task and seat; a game whose start
    never changes is one task per seat: `key: [env, seat]`) tracks the success rate p of that
    task. With r = (R - min_reward) / (max_reward - min_reward) in [0, 1] and p as it stood before
    this batch: `raw = r - p`, `A = (raw - mean_B raw) / (std_u,B raw + 1e-8)` over the batch's
    trajectories (a batch of one keeps raw). After the optimizer step, `observe` decays and
    updates each task's posterior once per batch: `alpha <- rho alpha + sum r`,
    `beta <- rho beta + sum (1 - r)`, with `rho` a number, or `kl`: `rho = 2^(-D / half_life)`
    clamped to [rho_min, rho_max], D the mean absolute change in log-prob of the task's previous
    sample between when it was stored and now (a first visit: D = 0). The prior is
    alpha0 = beta0 = 0.5 (the reference's offline pass over the base model is not run).
    """

    def __init__(self, *, rho: Any = "kl", min_reward: float = 0.0, max_reward: float = 1.0,
                 key: Sequence[str] = ("env", "task", "seat"), half_life: float = 0.06, rho_min: float = 0.875,
                 rho_max: float = 0.96):
        if rho != "kl" and not (isinstance(rho, (int, float)) and 0.0 < rho <= 1.0):
            raise ValueError(f"spo: rho must be 'kl' or a number in (0, 1], got {rho!r}")
        if max_reward <= min_reward:
            raise ValueError(f"spo: max_reward must exceed min_reward, got {min_reward:g} and {max_reward:g}")
        if not 0.0 < rho_min <= rho_max <= 1.0:
            raise ValueError(f"spo: need 0 < rho_min <= rho_max <= 1, got {rho_min:g} and {rho_max:g}")
        self.rho, self.low, self.high = rho, float(min_reward), float(max_reward)
        self.key = tuple(key)
        self.half_life, self.rho_min, self.rho_max = float(half_life), float(rho_min), float(rho_max)
        self.tracker = BetaTracker(0.5, 0.5)
        self.stored: dict[str, dict[str, Any]] = {}  # key -> {"turns": [...], "logprobs": [[...]]}

    def _trajectories(self, batch: TurnBatch):
        returns, traj_of_row, num_traj = trajectory_returns(batch)
        returns = bounded_returns(returns, self.low, self.high, lambda lo, hi: f"spo: trajectory returns must lie "
                                  f"in [{self.low:g}, {self.high:g}], got [{lo:g}, {hi:g}]; set min_reward/max_reward")
        success = (returns - self.low) / (self.high - self.low)
        parts = [per_trajectory(batch, name, traj_of_row, num_traj) for name in self.key]
        keys = ["|".join(map(str, values)) for values in zip(*parts)] if parts else [""] * num_traj
        return success, keys, traj_of_row

    def __call__(self, batch: TurnBatch, *, return_aux: bool = False):
        success, keys, traj_of_row = self._trajectories(batch)
        raw = success - torch.tensor([self.tracker.mean(k) for k in keys], dtype=torch.float64)
        adv = whiten(raw, unbiased=True, eps=1e-8) if raw.numel() >= 2 else raw
        adv = to_advantages(adv[traj_of_row])
        return (adv, {}) if return_aux else adv

    def observe(self, batch: TurnBatch, score: Callable[[list[Turn]], list] | None = None) -> None:
        """Update each task's posterior with this batch, after the policy update. `score(turns)`
        gives each turn's response-token log-probs under the current policy (None for a turn it
        cannot score); `rho: kl` needs it, and it stores each task's latest sample."""
        success, keys, traj_of_row = self._trajectories(batch)
        if self.rho == "kl" and score is None:
            raise ValueError("spo: rho 'kl' re-scores each task's last sample; pass score= (a training run "
                             "does) or set rho to a number")
        latest: dict[str, list[Turn]] = {}
        if batch.turns is not None:
            rows_of: dict[int, list[int]] = {}
            for row, t in enumerate(traj_of_row.tolist()):
                rows_of.setdefault(t, []).append(row)
            order = sorted(rows_of, key=lambda t: batch.turns[rows_of[t][0]].episode_id)
            for t in order:  # the last sample of each task in episode order
                latest[keys[t]] = [batch.turns[r] for r in sorted(rows_of[t], key=lambda r: batch.turns[r].turn)]
        drift = self._drift(sorted(set(keys)), latest, score) if self.rho == "kl" else {}
        totals: dict[str, float] = {}
        counts: dict[str, int] = {}
        for k, s in zip(keys, success.tolist()):
            totals[k] = totals.get(k, 0.0) + s
            counts[k] = counts.get(k, 0) + 1
        for k in totals:
            rho = drift[k] if self.rho == "kl" else float(self.rho)
            self.tracker.observe(k, totals[k], counts[k] - totals[k], rho)

    def _drift(self, keys: list[str], latest: dict[str, list[Turn]], score) -> dict[str, float]:
        """rho per key from the drift of its stored sample; stores the new samples' log-probs."""
        old = [(k, turn, lp) for k in keys if k in self.stored
               for turn, lp in zip(self.stored[k]["turns"], self.stored[k]["logprobs"])]
        new = [(k, turn) for k in keys for turn in latest.get(k, [])]
        scored = score([Turn(**t) for _, t, _ in old] + [t for _, t in new]) if (old or new) else []
        gaps: dict[str, list[float]] = {}
        for (k, _, before), now in zip(old, scored[: len(old)]):
            if now is not None:
                gaps.setdefault(k, []).extend(abs(a - b) for a, b in zip(before, now))
        rho = {}
        for k in keys:
            d = sum(gaps[k]) / len(gaps[k]) if gaps.get(k) else 0.0
            rho[k] = min(max(2.0 ** (-d / self.half_life), self.rho_min), self.rho_max)
        fresh: dict[str, dict[str, list]] = {}
        for (k, turn), now in zip(new, scored[len(old):]):
            if now is not None:
                entry = fresh.setdefault(k, {"turns": [], "logprobs": []})
                entry["turns"].append(asdict(turn))
                entry["logprobs"].append(list(now))
        self.stored.update(fresh)
        return rho

    def state_dict(self) -> dict[str, Any]:
        return {"tracker": self.tracker.state_dict(), "stored": self.stored}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracker.load_state_dict(state["tracker"])
        self.stored = dict(state.get("stored", {}))

    def __repr__(self) -> str:
        return f"SingleStreamValue(rho={self.rho!r}, key={self.key}, tasks={len(self.tracker)})"
