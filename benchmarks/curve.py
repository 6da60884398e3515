"""Print scalar curves of a run folder from its TensorBoard events: python benchmarks/curve.py RUN_DIR [TAG ...]"""
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

run = sys.argv[1]
tags = sys.argv[2:] or ["eval/random/non_loss", "eval/random/win", "train/main/entropy", "perf/iteration_s"]
acc = EventAccumulator(run)
acc.Reload()
for tag in tags:
    if tag in acc.Tags()["scalars"]:
        print(tag, " ".join(f"{e.step}:{e.value:.3f}" for e in acc.Scalars(tag)))
