"""A real-size policy through a few training iterations on one device: seconds per iteration,
generated tokens/s and peak memory (the GPU check of docs/models.md, with the CPU run beside it).

    python benchmarks/gpu_check.py --device cuda --dtype bfloat16    # on a GPU machine
    python benchmarks/gpu_check.py --device cpu                      # the same on CPU

The policy is `smollm2-shape`: SmolLM2-135M's architecture with random weights and the tiny
tokenizer, so it needs no pretrained package and no download. It plays tic-tac-toe self-play with
free-text answers (`max_new_tokens` per move), in-process (`ray.enabled=false`), so it also runs
where Ray is not installed. Prints one table row and writes JSON next to the run."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from mas.validation import load_config
from mas.run import TrainingRun


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--model", default="smollm2-shape")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = Path(args.out or f"runs/gpu_check_{args.device.replace(':', '')}_{args.dtype}")
    threads = 16 if args.device.startswith("cuda") else 2
    cfg = load_config("configs/quickstart.yaml", [
        f"run.dir={out}", "ray.enabled=false", f"training.iterations={args.iterations}", "eval.every=0", "eval.exact=false",
        "eval.final_games=0", "eval.compare_initial=false", f"rollout.episodes={args.episodes}",
        f"policies.main.model={args.model}", f"policies.main.device={args.device}", f"policies.main.dtype={args.dtype}",
        f"policies.main.resources.threads={threads}", "policies.main.optimizer.lr=0.0001",
        f"policies.main.gradient_checkpointing={str(args.gradient_checkpointing).lower()}",
        "agents.0.sampling.constrained=false", f"agents.0.sampling.max_new_tokens={args.max_new_tokens}"])
    started = time.perf_counter()
    summary = TrainingRun(cfg, progress=True).run()
    history = summary["history"]
    steady = history[1:] or history  # the first iteration pays for warm-up (allocator, kernels)
    row = {
        "device": args.device, "dtype": args.dtype, "model": args.model, "episodes": args.episodes,
        "iterations": len(history), "wall_s": time.perf_counter() - started,
        "iteration_s": statistics.mean(h["perf/iteration_s"] for h in steady),
        "rollout_s": statistics.mean(h["perf/rollout_s"] for h in steady),
        "update_s": statistics.mean(h["perf/update_s"] for h in steady),
        "generated_tokens_per_s": statistics.mean(h["perf/generated_tokens_per_s"] for h in steady),
        "peak_rss_gb": max(h.get("train/main/peak_rss_gb", 0.0) for h in history),
        "peak_gpu_gb": max(h.get("train/main/peak_gpu_gb", 0.0) for h in history),
    }
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    (out / "gpu_check.json").write_text(json.dumps(row, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
