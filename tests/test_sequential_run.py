"""Sequential updates inside a training run: HAPPO with a random agent order draws the same order
and reaches the same parameters after a resume; SeeUPO's pools go from the last turn back."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from mas.validation import load_config
from mas.run import TrainingRun

QUICK = ["ray.enabled=false", "rollout.episodes=16", "eval.every=0", "eval.final_games=0", "run.save_every=1"]


def _run(tmp_path, name, config, *extra, resume=False):
    run_dir = tmp_path / name
    overrides = [*QUICK, f"run.dir={run_dir}", *extra] + ([f"resume={run_dir}"] if resume else [])
    run = TrainingRun(load_config(config, overrides), progress=False)
    run.run()
    return run


def test_happo_random_order_is_reproduced_after_resume(tmp_path):
    extra = ["training.sequential.order=random", "training.iterations=3"]
    straight = _run(tmp_path, "straight", "configs/happo_math.yaml", *extra)
    _run(tmp_path, "split", "configs/happo_math.yaml", "training.sequential.order=random", "training.iterations=1")
    resumed = _run(tmp_path, "split", "configs/happo_math.yaml", *extra, resume=True)
    assert resumed.pool_orders == straight.pool_orders[1:]
    for policy in ("solver_model", "verifier_model"):
        a = load_file(str(tmp_path / "straight" / "step-3" / policy / "model.safetensors"))
        b = load_file(str(tmp_path / "split" / "step-3" / policy / "model.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), policy


def test_seeupo_run_goes_from_the_last_turn_back(tmp_path):
    run = _run(tmp_path, "seeupo", "configs/seeupo_math.yaml", "training.iterations=1")
    order = run.pool_orders[0]
    solver = [label for label in order if label.startswith("solver_model")]
    turns = [int(label.rsplit(" ", 1)[1]) for label in solver]
    assert turns == sorted(turns, reverse=True) and turns[-1] == 0
    summary = (Path(run.run_dir) / "summary.json").read_text()
    assert "train/solver_model/pools" in summary
