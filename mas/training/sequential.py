"""Sequential policy updates (docs/algorithms.md, "Sequential updates"): `seeupo` pools by turn index,
`happo` pools by agent; each pool is updated with a clipped sequence-ratio objective weighted by
a per-trajectory factor P that carries the ratios of the pools updated before it.

This module holds the schedule and the factor bookkeeping only (pure; no Ray, no models): the
controller hands it a function that updates one or several pools on the policies' workers.

SeeUPO (arXiv:2602.06554 Sec. 4.2, as its public code does it): for each policy, pools D_t of the rows
with turn index t, for t = T-1 down to 0; P per trajectory (episode, seat), starting at 1; after D_t
is updated, `P <- P * s_new` for each trajectory with a row in D_t, where s_new is that turn's
recomputed sequence ratio against the record taken before the pool's steps.

HAPPO (Kuba et al. 2021, arXiv:2109.11251): pools by agent, in `order`. The factor is the joint
one: keyed by episode, so an agent's update sees how much the agents updated before it changed the
probability of the episode's joint actions; each agent multiplies in `exp(mean over its response
tokens in the episode of (log pi_new - log pi_old))`.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

from mas.records import Turn

__all__ = ["Pool", "seeupo_pools", "happo_pools", "agent_order", "Factors", "run_sequential", "SCHEDULES"]

SCHEDULES = ("joint", "seeupo", "happo")
ORDERS = ("reverse", "forward", "random")


@dataclass
class Pool:
    policy: str
    rows: list[int]  # indices into the turns of the batch
    label: str  # "turn 2", "agent solver"


def seeupo_pools(turns: Sequence[Turn], policies: Sequence[str]) -> list[list[Pool]]:
    """Stages of pools updated together: stage k holds, for every policy, its rows with turn index
    T_p - 1 - k (T_p the longest turn count of that policy), so each policy goes T-1 ... 0 and
    different policies (independent trajectories) update side by side."""
    by_policy: dict[str, dict[int, list[int]]] = {p: {} for p in policies}
    for i, t in enumerate(turns):
        if t.policy in by_policy:
            by_policy[t.policy].setdefault(t.turn, []).append(i)
    stages: list[list[Pool]] = []
    for policy, by_turn in by_policy.items():
        if not by_turn:
            continue
        for k, turn in enumerate(range(max(by_turn), -1, -1)):
            if k == len(stages):
                stages.append([])
            if by_turn.get(turn):
                stages[k].append(Pool(policy, by_turn[turn], f"turn {turn}"))
    return stages


def agent_order(turns: Sequence[Turn], order: str | Sequence[str], seed: int) -> list[str]:
    """The agents of `turns` in update order. `forward` / `reverse`: by each agent's first action
    (its smallest step in any episode; ties by name), as is or reversed; `random`: a permutation
    drawn from `seed` (the run derives it from its seed and the iteration, so a resumed run draws
    the same one); a list: exactly the agents present, in that order."""
    first: dict[str, int] = {}
    for t in turns:
        first[t.agent] = min(first.get(t.agent, t.step), t.step)
    agents = sorted(first, key=lambda a: (first[a], a))
    if isinstance(order, str):
        if order == "forward":
            return agents
        if order == "reverse":
            return agents[::-1]
        if order == "random":
            shuffled = list(agents)
            random.Random(seed).shuffle(shuffled)
            return shuffled
        raise ValueError(f"happo order must be reverse, forward, random or a list of agents, got {order!r}")
    listed = list(order)
    if sorted(listed) != sorted(agents):
        raise ValueError(f"happo order {listed} must list each training agent once: {sorted(agents)}")
    return listed


def happo_pools(turns: Sequence[Turn], policies: Sequence[str], order, seed: int) -> list[list[Pool]]:
    """One stage per agent, in `order`: all rows of that agent (its policy's worker updates it)."""
    trained = [t for t in turns if t.policy in policies]
    stages = []
    for agent in agent_order(trained, order, seed):
        rows = [i for i, t in enumerate(turns) if t.agent == agent and t.policy in policies]
        stages.append([Pool(turns[rows[0]].policy, rows, f"agent {agent}")])
    return stages


@dataclass
class Factors:
    """P per key (a trajectory for seeupo, an episode for happo), starting at 1."""

    key_of_row: list[Hashable]
    clip: float | None = None  # clip P to [1 - clip, 1 + clip]
    values: dict[Hashable, float] = field(default_factory=dict)

    def of(self, rows: Sequence[int]) -> list[float]:
        return [self.values.get(self.key_of_row[r], 1.0) for r in rows]

    def update(self, rows: Sequence[int], log_ratio_sum: Sequence[float], tokens: Sequence[int]) -> None:
        """P <- P * exp(mean log-ratio over the tokens each key has among `rows`)."""
        sums: dict[Hashable, list[float]] = {}
        for r, s, n in zip(rows, log_ratio_sum, tokens):
            acc = sums.setdefault(self.key_of_row[r], [0.0, 0])
            acc[0] += s
            acc[1] += n
        for key, (s, n) in sums.items():
            if n == 0:
                continue
            p = self.values.get(key, 1.0) * math.exp(s / n)
            if self.clip is not None:
                p = min(max(p, 1.0 - self.clip), 1.0 + self.clip)
            self.values[key] = p


# A job is (pool, advantages of its rows already multiplied by P); the function runs a list of jobs
# (at most one per policy, so they may run side by side) and returns, per job, the worker's result:
# {"metrics": {...}, "log_ratio_sum": [...per row], "tokens": [...per row]}.
UpdatePools = Callable[[list[tuple[Pool, list[float]]]], list[dict[str, Any]]]


def run_sequential(schedule: str, turns: Sequence[Turn], advantages: Sequence[float], policies: Sequence[str],
                   update_pools: UpdatePools, *, order="reverse", clip_factor: float | None = None,
                   seed: int = 0) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Run the schedule; returns (mean metrics per policy over its pools, pool labels in order)."""
    if schedule == "seeupo":
        stages = seeupo_pools(turns, policies)
        keys = [(t.episode_id, t.seat) for t in turns]
    elif schedule == "happo":
        stages = happo_pools(turns, policies, order, seed)
        keys = [t.episode_id for t in turns]
    else:
        raise ValueError(f"training.update must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    factors = Factors(keys, clip_factor)
    sums: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    labels = []
    for stage in stages:
        jobs = [(pool, [advantages[r] * p for r, p in zip(pool.rows, factors.of(pool.rows))]) for pool in stage]
        for (pool, _), result in zip(jobs, update_pools(jobs)):
            factors.update(pool.rows, result["log_ratio_sum"], result["tokens"])
            labels.append(f"{pool.policy}: {pool.label}")
            counts[pool.policy] = counts.get(pool.policy, 0) + 1
            for k, v in result["metrics"].items():
                sums.setdefault(pool.policy, {})[k] = sums.get(pool.policy, {}).get(k, 0.0) + v
    metrics = {p: {k: v / counts[p] for k, v in m.items()} for p, m in sums.items()}
    for p in metrics:
        metrics[p]["pools"] = float(counts[p])
    return metrics, labels
