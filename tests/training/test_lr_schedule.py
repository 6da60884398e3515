"""Learning-rate schedules: the factors, the one-line refusals, and a run that logs the scheduled
rate and resumes on the same schedule."""
from __future__ import annotations

import math
import shutil

import pytest
import torch
from safetensors.torch import load_file

from mas.config import ConfigError
from mas.run import TrainingRun
from mas.training.lr_schedule import lr_factor
from mas.validation import load_config


def test_factors():
    assert [lr_factor("constant", i, 5) for i in range(5)] == [1.0] * 5
    assert [lr_factor("linear", i, 5, end=0.2) for i in range(5)] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    cosine = [lr_factor("cosine", i, 5, end=0.0) for i in range(5)]
    assert cosine == pytest.approx([1.0, 0.5 + 0.5 * math.cos(math.pi / 4), 0.5, 0.5 - 0.5 * math.cos(math.pi / 4), 0.0])
    # warmup: 1/2, 2/2, then the decay over the 3 iterations left
    assert [lr_factor("linear", i, 5, end=0.5, warmup=2) for i in range(5)] == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.5])
    assert lr_factor("linear", 9, 5, end=0.5) == pytest.approx(0.5)  # past the end it stays at the end
    with pytest.raises(ValueError, match="optimizer.schedule must be one of constant, linear, cosine"):
        lr_factor("step", 0, 5)


@pytest.mark.parametrize("override,key", [
    ("policies.main.optimizer.schedule=step", "optimizer.schedule"),
    ("policies.main.optimizer.schedule_end=-0.5", "optimizer.schedule_end"),
    ("policies.main.optimizer.warmup_iterations=-1", "optimizer.warmup_iterations"),
])
def test_bad_schedule_is_one_line(override, key):
    with pytest.raises(ConfigError, match=key) as err:
        load_config("configs/quickstart.yaml", [override])
    assert "\n" not in str(err.value)


QUICK = ["rollout.episodes=8", "eval.every=0", "eval.final_games=0", "run.save_every=2", "ray.enabled=false",
         "training.iterations=4", "policies.main.optimizer.lr=0.002", "policies.main.optimizer.schedule=linear",
         "policies.main.optimizer.schedule_end=0.25"]


def test_a_run_follows_the_schedule_and_resumes_on_it(tmp_path):
    straight = tmp_path / "straight"
    summary = TrainingRun(load_config("configs/quickstart.yaml", [*QUICK, f"run.dir={straight}"]), progress=False).run()
    assert [h["train/main/lr"] for h in summary["history"]] == pytest.approx([0.002, 0.0015, 0.001, 0.0005])
    # an interrupted run: the same folder with only the step-2 checkpoint committed
    split = tmp_path / "split"
    shutil.copytree(straight, split)
    for name in ("step-4", "final"):
        shutil.rmtree(split / name, ignore_errors=True)
    resumed = TrainingRun(load_config("configs/quickstart.yaml", [*QUICK, f"run.dir={split}", f"resume={split}"]),
                          progress=False).run()
    assert [h["train/main/lr"] for h in resumed["history"] if h["iteration"] > 2] == pytest.approx([0.001, 0.0005])
    a, b = (load_file(str(d / "step-4" / "main" / "model.safetensors")) for d in (straight, split))
    for key in a:
        assert torch.equal(a[key], b[key]), key
