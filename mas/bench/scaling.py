"""Rollout scaling: engine throughput as concurrent games and policies grow. Each point runs in its
own process so that its peak resident memory is its own (`python -m mas.bench.scaling ...` prints one
JSON line; `scaling_table` drives it)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time

from mas.bench.rollout import Throughput, game_specs, median_run
from mas.bench.workloads import build
from mas.orchestration.handles import LocalHandle
from mas.orchestration.rollout import RolloutEngine
from mas.orchestration.workers import PolicyWorker


def measure_point(workload: str, games: int, policies: int, seed: int, threads: int, repeats: int = 3) -> dict:
    """`policies` copies of the workload's model, each its own worker; game i seats policy i mod P
    against policy (i + 1) mod P, so every round sends each policy a batch."""
    setup = build(workload, threads=threads)
    agent = setup.agent
    workers = [setup.worker] + [PolicyWorker(setup.worker.spec) for _ in range(policies - 1)]
    agents = [dataclasses.replace(agent, name=f"{agent.name}{k}", policy=f"{agent.policy}{k}") for k in range(policies)]
    handles = {a.policy: LocalHandle(w) for a, w in zip(agents, workers)}

    def engine() -> RolloutEngine:  # a fresh one per run: no prompt memo carried over
        return RolloutEngine(setup.env, handles, {a.policy: w.tokenizer for a, w in zip(agents, workers)})

    seats = len(setup.seats)
    specs = game_specs(setup, games, seed)
    for i, spec in enumerate(specs):
        spec.players = [agents[(i + s) % policies] for s in range(seats)]
    engine().play(game_specs(setup, 2, seed + 1, [agents[0]] * seats), seed + 1)  # warm-up
    runs = []
    with ResidentPeak() as memory:
        for _ in range(repeats):
            start = time.perf_counter()
            _, stats = engine().play(specs, seed)
            runs.append(Throughput(games, time.perf_counter() - start, stats.generated_tokens, stats.generate_calls))
    result = median_run(runs)
    return {"games": games, "policies": policies, **result.as_dict(), "peak_rss_gb": memory.peak / 2**30,
            "rollout_rss_gb": (memory.peak - memory.start) / 2**30}


class ResidentPeak:
    """Peak resident memory of this process while the block runs, sampled every few milliseconds
    from /proc (Linux); `start` is the resident size when it began. Elsewhere both are the
    process's lifetime peak."""

    def __init__(self, every_s: float = 0.002):
        self.every_s = every_s
        self.start = self.peak = 0

    @staticmethod
    def _resident() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * resource.getpagesize()
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def __enter__(self):
        import threading

        self.start = self.peak = self._resident()
        self._stop = threading.Event()

        def sample():
            while not self._stop.wait(self.every_s):
                self.peak = max(self.peak, self._resident())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._resident())


def scaling_table(workload: str, games_list, policies_list, seed: int, threads: int, repeats: int, *, base_games: int,
                  progress=print) -> list[dict]:
    """Games grow at one policy; policies grow at `base_games` games."""
    points = [(g, 1) for g in games_list] + [(base_games, p) for p in policies_list if p != 1 or base_games not in games_list]
    rows = []
    for games, policies in points:
        progress(f"scaling: {games} games, {policies} policies")
        command = [sys.executable, "-m", "mas.bench.scaling", workload, str(games), str(policies), str(seed),
                   str(threads), str(repeats)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"scaling point {games} games x {policies} policies failed:\n{done.stderr[-2000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return sorted(rows, key=lambda r: (r["policies"], r["games"]))


def main() -> None:
    parser = argparse.ArgumentParser(description="one scaling point (used by mas bench)")
    parser.add_argument("workload")
    parser.add_argument("games", type=int)
    parser.add_argument("policies", type=int)
    parser.add_argument("seed", type=int)
    parser.add_argument("threads", type=int)
    parser.add_argument("repeats", type=int)
    a = parser.parse_args()
    print(json.dumps(measure_point(a.workload, a.games, a.policies, a.seed, a.threads, a.repeats)))


if __name__ == "__main__":
    main()
