"""The task pool and its samplers: uniform picks distinct tasks, VADE picks the tasks whose groups
are likely to disagree, both replay exactly; a run with a VADE pool resumes to the same weights."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from mas.config import ConfigError
from mas.validation import load_config
from mas.orchestration.task_sampling import TaskSampler
from mas.run import TrainingRun


def test_uniform_takes_distinct_tasks_while_the_pool_lasts():
    sampler = TaskSampler(10, "uniform", run_seed=0, group_size=4)
    picks = sampler.choose(0, 10)
    assert sorted(picks) == sorted(sampler.seeds)
    assert sampler.choose(0, 10) == picks and sampler.choose(1, 10) != picks
    assert len(set(sampler.choose(0, 15))) == 10  # past the pool: round again


def test_vade_prefers_tasks_whose_groups_would_disagree():
    sampler = TaskSampler(3, "vade", run_seed=0, group_size=8)
    sampler.tracker.set("0", 200, 2)  # nearly always solved
    sampler.tracker.set("1", 50, 50)  # solved half the time
    sampler.tracker.set("2", 2, 200)  # nearly never solved
    assert [sampler.choose(it, 1) for it in range(20)] == [[sampler.seeds[1]]] * 20


def _episode(seed, group, outcome):
    return SimpleNamespace(seed=seed, group_id=group, seat_players=["a", "b"], outcomes=[outcome, outcome])


def test_vade_learns_success_rates_with_decay():
    sampler = TaskSampler(2, "vade", run_seed=0, group_size=2, decay=0.5, relax=1.0, prior=1.0)
    s0, s1 = sampler.seeds
    metrics = sampler.observe([_episode(s0, 0, "win"), _episode(s0, 0, "loss"), _episode(s1, 1, "win"),
                               _episode(s1, 1, "win")], {"a", "b"})
    assert sampler.tracker.get("0") == (0.5 + 1, 0.5 + 1) and sampler.tracker.get("1") == (0.5 + 2, 0.5)
    assert metrics == {"rollout/tasks_seen": 2.0, "rollout/mixed_groups": 0.5}
    again = TaskSampler(2, "vade", run_seed=0, group_size=2)
    again.load_state_dict(sampler.state_dict())
    assert again.choose(3, 2) == sampler.choose(3, 2)


@pytest.mark.parametrize("overrides,words", [
    (["rollout.task_sampler=vade"], "vade picks from a task pool; set rollout.tasks"),
    (["rollout.tasks=4", "rollout.task_sampler=best"], "rollout.task_sampler"),
    (["rollout.tasks=4", "rollout.vade.decay=0"], "rollout.vade.decay must be in (0, 1]"),
])
def test_bad_task_settings_are_refused(overrides, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        load_config("configs/math_loop.yaml", overrides)


QUICK = ["rollout.episodes=16", "rollout.group_size=4", "rollout.tasks=6", "rollout.task_sampler=vade",
         "eval.every=0", "eval.final_games=0", "run.save_every=2", "ray.enabled=false"]


def _run(tmp_path: Path, name: str, *extra: str):
    cfg = load_config("configs/math_loop.yaml", [*QUICK, f"run.dir={tmp_path / name}", *extra])
    return TrainingRun(cfg, progress=False).run()


def test_a_vade_run_trains_on_its_pool_and_resumes_exactly(tmp_path):
    summary = _run(tmp_path, "straight", "training.iterations=4")
    assert summary["history"][-1]["rollout/tasks_seen"] == 4  # 4 groups, 4 distinct pool tasks
    _run(tmp_path, "split", "training.iterations=2")
    split = tmp_path / "split"
    TrainingRun(load_config("configs/math_loop.yaml", [*QUICK, f"run.dir={split}", "training.iterations=4",
                                                        f"resume={split}"]), progress=False).run()
    for policy in ("solver_model", "verifier_model"):
        a, b = (load_file(str(d / "step-4" / policy / "model.safetensors")) for d in (tmp_path / "straight", split))
        assert all(torch.equal(a[k], b[k]) for k in a)
    states = [torch.load(d / "step-4" / "trainer_state" / "controller.pt", weights_only=False)["task_sampler"]
              for d in (tmp_path / "straight", split)]
    assert states[0] == states[1] and len(states[0]["tracker"]["params"]) == 6


def test_eval_on_the_pool_scores_the_training_problems(tmp_path):
    summary = _run(tmp_path, "pool_eval", "training.iterations=1", "eval.every=1", "eval.games=6",
                   "eval.tasks=pool")
    assert "eval/team/accuracy" in summary["history"][-1]
    with pytest.raises(ConfigError, match="eval.tasks pool evaluates on the task pool"):
        load_config("configs/math_loop.yaml", ["eval.tasks=pool"])
