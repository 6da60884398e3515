"""Dr. MAS in miniature: per-agent gradient norms under global (grpo) vs agent-wise (drmas)
advantage normalization, on a two-agent cooperative workflow that shares one tiny policy.

The workflow is a router (Dr. MAS's search system: a verifier routes to an answer agent or ends):
the verifier acts once more per episode than the solver (unequal calls), and the solver may pick a
malformed answer that costs -0.1 on that step (per-step format penalties), so the two agents' returns
have different means and spreads within a problem group. Each (estimator, seed) trains from the same
initial model; the per-agent gradient norm is the norm of the gradient of the same aggregated loss
over that agent's rows alone, at the start of each update.

    python benchmarks/drmas_gradnorm.py [--seeds 0 1 2] [--iterations 15] [--out docs/results/drmas_gradnorm.json]

A spike is an update whose gradient norm exceeds 3x the median of that agent's norms in that run.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mas.validation import load_config
from mas.run import TrainingRun

BASE = "configs/drmas_math.yaml"
WORKFLOW = [
    "env.workflow={type: router, agents: [solver], router: verifier, max_rounds: 3}",
    "env.task.malformed_answers=3",
    "env.history=false",
    "agents.0.role_prompt=''",
    "agents.1.role_prompt=''",
]


def run_one(estimator: str, seed: int, iterations: int, episodes: int, workdir: Path) -> dict:
    args = {"grpo": "training.estimator_args={}", "drmas": "training.estimator_args={unbiased: true}"}[estimator]
    cfg = load_config(BASE, [*WORKFLOW, f"training.estimator={estimator}", args, f"run.seed={seed}",
                             f"training.iterations={iterations}", f"rollout.episodes={episodes}",
                             "ray.enabled=false", "eval.every=0", "eval.final_games=0", f"run.save_every={iterations}",
                             "policies.shared.model=tiny-xs", "policies.shared.optimizer.lr=0.003",
                             f"run.dir={workdir / f'{estimator}-{seed}'}"])
    t0 = time.perf_counter()
    summary = TrainingRun(cfg, progress=False).run()
    history = summary["history"]
    out = {"estimator": estimator, "seed": seed, "seconds": time.perf_counter() - t0}
    for agent in ("solver", "verifier"):
        norms = [h[f"train/shared/grad_norm/{agent}"] for h in history if f"train/shared/grad_norm/{agent}" in h]
        median = statistics.median(norms)
        out[agent] = {"max": max(norms), "mean": statistics.fmean(norms),
                      "spikes": sum(n > 3 * median for n in norms), "norms": norms}
    tail = history[-3:]
    out["final_accuracy"] = statistics.fmean(h["reward/team_accuracy"] for h in tail)
    out["final_invalid_rate"] = statistics.fmean(h["rollout/invalid_rate"] for h in tail)
    out["adv_std"] = {a: statistics.fmean(h[f"adv/{a}/std"] for h in history) for a in ("solver", "verifier")}
    return out


def table(results: list[dict]) -> str:
    head = (f"{'estimator':<9} {'seed':>4}  {'solver max':>10} {'mean':>6} {'spikes':>6}  "
            f"{'verifier max':>12} {'mean':>6} {'spikes':>6}  {'accuracy':>8} {'invalid':>7}  {'s':>4}")
    lines = [head, "-" * len(head)]
    for r in results:
        s, v = r["solver"], r["verifier"]
        lines.append(f"{r['estimator']:<9} {r['seed']:>4}  {s['max']:>10.3f} {s['mean']:>6.3f} {s['spikes']:>6}  "
                     f"{v['max']:>12.3f} {v['mean']:>6.3f} {v['spikes']:>6}  {r['final_accuracy']:>8.3f} "
                     f"{r['final_invalid_rate']:>7.3f}  {r['seconds']:>4.0f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--out", default=None, help="write all numbers (per-update norms too) as JSON")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for estimator in ("grpo", "drmas"):
                results.append(run_one(estimator, seed, args.iterations, args.episodes, Path(tmp)))
                print(table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(results))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
