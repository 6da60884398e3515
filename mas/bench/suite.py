"""`mas bench`: runs the selected parts on the selected workloads and returns one result dict
(the JSON written by `--json`; `mas.bench.report` formats it)."""
from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass

import numpy as np
import torch

from mas.bench import rollout, scaling, update
from mas.bench.workloads import WORKLOADS, available, build
from mas.orchestration.handles import LocalHandle
from mas.orchestration.rollout import RolloutEngine

PARTS = ("rollout", "update", "scaling")


@dataclass
class BenchSettings:
    workloads: tuple[str, ...] = ("tictactoe-tiny", "kuhn-tiny", "tictactoe-tiny-history")
    parts: tuple[str, ...] = PARTS
    games: int = 64  # concurrent games of the rollout comparison (the naive loop plays as many)
    update_games: int = 128  # games whose turns make the update's fixed batch (the quickstart's episodes)
    repeats: int = 5  # timed repeats of each rollout and update measurement (median reported)
    scaling_games: tuple[int, ...] = (1, 8, 64, 256)
    scaling_policies: tuple[int, ...] = (1, 2, 4)
    threads: int = 2
    seed: int = 0

    def validate(self) -> None:
        for name in self.workloads:
            if name not in WORKLOADS:
                raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
        for part in self.parts:
            if part not in PARTS:
                raise ValueError(f"unknown part {part!r}; known: {', '.join(PARTS)}")
        counts = [self.games, self.update_games, self.repeats, self.threads, *self.scaling_games, *self.scaling_policies]
        if min(counts) < 1:
            raise ValueError("games, update games, repeats, threads and scaling points must be at least 1")


def machine() -> dict:
    return {"cpus": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def run_bench(settings: BenchSettings, progress=print) -> dict:
    settings.validate()
    result: dict = {"machine": machine(), "settings": dict(settings.__dict__), "rollout": [], "update": [],
                    "scaling": [], "skipped": []}
    for name in settings.workloads:
        if not available(name):
            result["skipped"].append(f"{name}: needs {WORKLOADS[name].needs} (mas models prepare ...)")
            continue
        progress(f"{name}: building")
        setup = build(name, threads=settings.threads)
        if "rollout" in settings.parts:
            progress(f"{name}: rollout, {settings.games} games (engine, floor, naive loops)")
            result["rollout"].append({"workload": name, **compare_rollout(setup, settings)})
        if "update" in settings.parts:
            progress(f"{name}: update on the turns of {settings.update_games} games")
            result["update"].append({"workload": name, **measure_update(setup, settings)})
        if "scaling" in settings.parts:
            rows = scaling.scaling_table(name, settings.scaling_games, settings.scaling_policies, settings.seed,
                                         settings.threads, settings.repeats, base_games=settings.games, progress=progress)
            result["scaling"].extend({"workload": name, **r} for r in rows)
    return result


def compare_rollout(setup, settings: BenchSettings) -> dict:
    """Engine, floor and both naive loops, interleaved `repeats` times on the same games; medians."""
    rollout.run_engine(setup, min(8, settings.games), seed=settings.seed + 1)  # warm-up
    engines, floors, naives, plain = [], [], [], []
    for _ in range(settings.repeats):
        engine, recorder = rollout.run_engine(setup, settings.games, seed=settings.seed)
        engines.append(engine)
        floors.append(rollout.replay_floor(setup.worker.backend, recorder.calls))
        naives.append(rollout.run_naive(setup, settings.games, seed=settings.seed))
        plain.append(rollout.run_naive_transformers(setup, settings.games, seed=settings.seed))
    engine, naive = rollout.median_run(engines), rollout.median_run(naives)
    # Ratios pair the runs made back to back (the machine's speed drifts between repeats).
    result = {"games": settings.games, "repeats": settings.repeats, "engine": engine.as_dict(),
              "naive": naive.as_dict(), "floor_s": statistics.median(floors),
              "speedup_vs_naive": statistics.median(n.seconds / e.seconds for e, n in zip(engines, naives)),
              "naive_transformers": rollout.median_run(plain).as_dict(),
              "speedup_vs_naive_transformers": statistics.median(n.seconds / e.seconds for e, n in zip(engines, plain)),
              "engine_vs_floor": statistics.median(e.seconds / f for e, f in zip(engines, floors))}
    if setup.env.history:  # the same games with KV-cache reuse switched off
        kept = setup.worker.backend.kept
        budget, kept.budget = kept.budget, 0
        runs = [rollout.run_engine(setup, settings.games, seed=settings.seed)[0] for _ in range(settings.repeats)]
        kept.budget = budget
        result["engine_without_kv_reuse"] = rollout.median_run(runs).as_dict()
    return result


def measure_update(setup, settings: BenchSettings) -> dict:
    policy = setup.agent.policy
    engine = RolloutEngine(setup.env, {policy: LocalHandle(setup.worker)}, {policy: setup.worker.tokenizer})
    episodes, _ = engine.play(rollout.game_specs(setup, settings.update_games, settings.seed + 2), settings.seed + 2)
    turns = [t for ep in episodes for t in ep.turns]
    # The values do not change the cost; a fixed draw keeps the batch the same between runs.
    advantages = np.random.default_rng(settings.seed).standard_normal(len(turns)).tolist()
    return update.time_update(setup, turns, advantages, settings.repeats).as_dict()
