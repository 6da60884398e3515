"""Frozen policies as opponents: `checkpoint:PATH` (a fixed model folder) and `pool` (the run's own
past checkpoints). Each is an agent on a policy id of its own, served by an in-process worker that
never trains; the rollout batches its turns like any policy's.

The pool holds the run's initial weights and its committed steps (the newest `size`). Each
iteration one member is drawn: `latest`, `uniform`, or `prioritized` (weight 1 - the learner's
score against it + 0.05, so the members it still struggles with come up more often). Elo ratings of
the learner and of every member are updated from the pool games (K = 16, a new member starts at the
learner's rating when it joins); the pool is saved with each checkpoint."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mas.agents.agent import Agent
from mas.agents.models import load_tokenizer
from mas.orchestration.handles import LocalHandle
from mas.orchestration.workers import PolicyWorker, WorkerSpec
from mas.seeding import POOL_STREAM, stable_seed
from mas.training import checkpoint

ELO_K = 16.0
POOL_SAMPLES = ("latest", "uniform", "prioritized")


class FrozenOpponent:
    """An agent that plays like `template` (prompt, sampling) on frozen weights from `path`."""

    def __init__(self, name: str, path: str, template: Agent, threads: int = 1):
        self.agent = replace(template, name=name, policy=name)
        self.handle = LocalHandle(PolicyWorker(WorkerSpec(policy=name, model_path=str(path), trainable=False,
                                                          threads=threads)))
        self.tokenizer = load_tokenizer(str(path))

    def load(self, path: str) -> None:
        self.handle.call("load_weights", str(path))


class OpponentPool(FrozenOpponent):
    def __init__(self, run_dir: Path, policy: str, initial_path: str, template: Agent, *, sample: str = "latest",
                 size: int = 5, seed: int = 0, threads: int = 1):
        if sample not in POOL_SAMPLES:
            raise ValueError(f"pool sample must be one of {', '.join(POOL_SAMPLES)}, got {sample!r}")
        super().__init__("pool", initial_path, template, threads)
        self.run_dir, self.policy, self.initial_path = Path(run_dir), policy, str(initial_path)
        self.sample, self.size, self.seed = sample, size, seed
        self.elo: dict[str, float] = {"learner": 1000.0, "initial": 1000.0}
        self.scores: dict[str, list[float]] = {}  # member -> [learner's points, games]
        self.current: str | None = None

    def members(self) -> list[str]:
        steps = [f"step-{n}" for n in checkpoint.committed_steps(self.run_dir)]
        for name in steps:
            self.elo.setdefault(name, self.elo["learner"])
        return (["initial"] + steps)[-self.size:]

    def choose(self, iteration: int) -> str:
        members = self.members()
        if self.sample == "latest":
            choice = members[-1]
        else:
            rng = np.random.default_rng(stable_seed(self.seed, iteration, POOL_STREAM))
            weights = np.ones(len(members))
            if self.sample == "prioritized":
                weights = np.array([1.0 - self._score(m) + 0.05 for m in members])
            choice = members[int(rng.choice(len(members), p=weights / weights.sum()))]
        if choice != self.current:
            self.load(self.initial_path if choice == "initial" else str(self.run_dir / choice / self.policy))
            self.current = choice
        return choice

    def _score(self, member: str) -> float:
        points, games = self.scores.get(member, [0.0, 0.0])
        return points / games if games else 0.5

    def record(self, learner_points: list[float]) -> dict[str, float]:
        """Elo and score updates from this iteration's games against the current member
        (1 win, 0.5 draw, 0 loss for the learner)."""
        member = self.current
        if member is None or not learner_points:
            return {}
        expected = 1.0 / (1.0 + 10 ** ((self.elo[member] - self.elo["learner"]) / 400.0))
        delta = ELO_K * sum(p - expected for p in learner_points)
        self.elo["learner"] += delta
        self.elo[member] -= delta
        acc = self.scores.setdefault(member, [0.0, 0.0])
        acc[0] += sum(learner_points)
        acc[1] += len(learner_points)
        out = {"pool/elo/learner": self.elo["learner"], "pool/members": float(len(self.members())),
               "pool/score_vs_current": sum(learner_points) / len(learner_points)}
        out.update({f"pool/elo/{m}": self.elo[m] for m in self.members()})
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"elo": dict(self.elo), "scores": {k: list(v) for k, v in self.scores.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.elo = dict(state["elo"])
        self.scores = {k: list(v) for k, v in state["scores"].items()}
        self.current = None


def learner_points(episodes, pool_name: str, agents: set[str]) -> list[float]:
    """The learner's result in each episode where it faced `pool_name`."""
    points = {"win": 1.0, "draw": 0.5, "loss": 0.0, "invalid": 0.0}
    out = []
    for ep in episodes:
        if pool_name in ep.seat_players:
            seat = next(s for s, p in enumerate(ep.seat_players) if p in agents)
            out.append(points[ep.outcomes[seat]])
    return out
