"""Which tasks an iteration trains on, when a run draws from a fixed pool (`rollout.tasks: N`):
task i is the episode seed `stable_seed(run seed, TASK_STREAM, i)`, so task i is the same problem
(or deal) in every iteration. Samplers:

- `uniform`: every task equally likely, distinct tasks while the pool lasts.
- `vade` (after VADE, arXiv:2511.18902; its exact score and decay are unpublished, so this is our
  reconstruction, docs/algorithms.md, "Task sampling"): a Beta posterior on each task's success rate, shared code
  with SPO's tracker. Each iteration draws p ~ Beta(alpha, beta) per task (Thompson sampling) and
  takes the tasks with the highest chance that a group of G samples is not all-same,
  `1 - p^G - (1 - p)^G`: a group that is all right or all wrong gives GRPO-style estimators no
  signal. Evidence decays on two time scales: a task seen this iteration keeps `decay` of its old
  evidence before adding the new; every task relaxes toward the prior by `relax` per iteration.

A task's success in an episode is the share of the learning agents' seats whose outcome is "win"
(a workflow's team answer is right; a game is won)."""
from __future__ import annotations

from typing import Any

import numpy as np

from mas.seeding import stable_seed
from mas.training.beta_tracker import BetaTracker

SAMPLERS = ("uniform", "vade")
EVAL_TASK_SOURCES = ("fresh", "pool")  # eval.tasks: fresh problems, or the training pool
TASK_STREAM = 0x7A5C  # keeps task seeds apart from the per-iteration seed streams


class TaskSampler:
    def __init__(self, tasks: int, sampler: str, *, run_seed: int, group_size: int, decay: float = 0.9,
                 relax: float = 0.99, prior: float = 1.0):
        if sampler not in SAMPLERS:
            raise ValueError(f"rollout.task_sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        self.sampler, self.run_seed, self.group_size = sampler, run_seed, group_size
        self.decay, self.relax = float(decay), float(relax)
        self.seeds = [stable_seed(run_seed, TASK_STREAM, i) for i in range(tasks)]
        self.task_of_seed = {s: i for i, s in enumerate(self.seeds)}
        self.tracker = BetaTracker(prior, prior)

    def choose(self, iteration: int, groups: int) -> list[int]:
        """The episode seed of each of this iteration's `groups` groups."""
        rng = np.random.default_rng(stable_seed(self.run_seed, iteration, TASK_STREAM))
        n = len(self.seeds)
        if self.sampler == "uniform":
            order = rng.permutation(n)
        else:
            alpha, beta = np.array([self.tracker.get(str(i)) for i in range(n)]).T
            p = rng.beta(alpha, beta)
            informative = 1.0 - p ** self.group_size - (1.0 - p) ** self.group_size
            order = np.argsort(-informative, kind="stable")
        picked = [int(order[k % n]) for k in range(groups)]  # past the pool's size, round again
        return [self.seeds[i] for i in picked]

    def observe(self, episodes: list, learners: set[str]) -> dict[str, float]:
        """Learn each task's success from this iteration's episodes; returns rollout metrics."""
        results: dict[int, list[float]] = {}
        for ep in episodes:
            task = self.task_of_seed.get(ep.seed)
            seats = [s for s, p in enumerate(ep.seat_players) if p in learners]
            if task is None or not seats:
                continue
            results.setdefault(task, []).append(sum(ep.outcomes[s] == "win" for s in seats) / len(seats))
        self.tracker.relax(self.relax)
        for task, wins in results.items():
            self.tracker.observe(str(task), sum(wins), len(wins) - sum(wins), self.decay)
        groups: dict[int, list[str]] = {}
        for ep in episodes:
            groups.setdefault(ep.group_id, []).append(tuple(ep.outcomes))
        mixed = [len(set(outcomes)) > 1 for outcomes in groups.values() if len(outcomes) > 1]
        return {"rollout/tasks_seen": float(len(results)),
                "rollout/mixed_groups": float(np.mean(mixed)) if mixed else 0.0}

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler, "tracker": self.tracker.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracker.load_state_dict(state["tracker"])
