"""A two-agent solver -> verifier loop trains on two different tiny models through Ray, with
checkpoints and metrics per policy; the same system on one shared policy; and a worker killed in
the middle of a run is restarted from the last checkpoint with the same final parameters."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import torch
from safetensors.torch import load_file

from mas.validation import load_config
from mas.run import TrainingRun
from mas.training import checkpoint

QUICK = ["rollout.episodes=16", "rollout.group_size=4", "eval.every=2", "eval.games=8", "eval.final_games=0",
         "run.save_every=2"]


def _config(tmp_path: Path, name: str, *extra: str, path: str = "configs/math_loop.yaml"):
    return load_config(path, [*QUICK, f"run.dir={tmp_path / name}", *extra])


def _weights(step: Path, policy: str) -> dict[str, torch.Tensor]:
    return load_file(str(step / policy / "model.safetensors"))


def _models(step: Path, policy: str) -> int:
    return sum(v.numel() for v in _weights(step, policy).values())


def test_two_agents_on_two_models_train_through_ray(tmp_path, ray_session):
    summary = TrainingRun(_config(tmp_path, "two", "training.iterations=2"), progress=False).run()
    run_dir = Path(summary["run_dir"])
    assert checkpoint.committed_steps(run_dir) == [2]
    step = run_dir / "step-2"
    assert (step / "trainer_state" / "solver_model.pt").is_file()
    assert (step / "trainer_state" / "verifier_model.pt").is_file()
    assert _models(step, "solver_model") > _models(step, "verifier_model")  # tiny-s vs tiny-xs
    last = summary["history"][-1]
    for policy in ("solver_model", "verifier_model"):
        assert last[f"train/{policy}/response_tokens"] > 0
        assert f"train/{policy}/grad_norm" in last
    assert "eval/team/accuracy" in last and "reward/team_accuracy" in last


def test_both_agents_on_one_shared_policy(tmp_path):
    cfg = _config(tmp_path, "shared", "training.iterations=2", "ray.enabled=false",
                  path="configs/math_loop_shared.yaml")
    summary = TrainingRun(cfg, progress=False).run()
    step = Path(summary["run_dir"]) / "step-2"
    assert sorted(p.name for p in step.iterdir() if p.is_dir()) == ["shared", "trainer_state"]
    last = summary["history"][-1]
    assert [k for k in last if k.startswith("train/") and k.endswith("/loss")] == ["train/shared/loss"]
    # one sequence per agent per episode: the solver's and the verifier's turns both trained the policy
    assert last["train/shared/sequences"] == 2 * 16


class _KillSolverOnce(TrainingRun):
    """Kills the solver's worker process (SIGKILL) after iteration 3's rollout, before its update."""
    killed = False

    def update_policies(self, turns, advantages, seed):
        if not _KillSolverOnce.killed and turns[0].episode_id >= 2 * 16:  # iteration index 2 = the third
            _KillSolverOnce.killed = True
            os.kill(self.workers["solver_model"].call("pid"), signal.SIGKILL)
        return super().update_policies(turns, advantages, seed)


def test_killed_worker_restarts_and_replays_to_the_same_result(tmp_path, ray_session):
    extra = ["training.iterations=4", "eval.every=0"]
    calm = TrainingRun(_config(tmp_path, "calm", *extra), progress=False).run()
    faulty = _KillSolverOnce(_config(tmp_path, "faulty", *extra), progress=False).run()
    assert _KillSolverOnce.killed and faulty["worker_restarts"] == 1 and calm["worker_restarts"] == 0
    calm_dir, faulty_dir = Path(calm["run_dir"]), Path(faulty["run_dir"])
    assert checkpoint.committed_steps(calm_dir) == checkpoint.committed_steps(faulty_dir) == [2, 4]
    for step in (2, 4):
        for policy in ("solver_model", "verifier_model"):
            a, b = _weights(calm_dir / f"step-{step}", policy), _weights(faulty_dir / f"step-{step}", policy)
            assert a.keys() == b.keys()
            for key in a:
                assert torch.allclose(a[key], b[key]), (step, policy, key)
    assert [h["iteration"] for h in faulty["history"]] == [1, 2, 3, 4]
    assert calm["history"][-1]["train/solver_model/loss"] == faulty["history"][-1]["train/solver_model/loss"]


def test_colocate_updates_one_policy_at_a_time_to_the_same_result(tmp_path):
    """colocate runs the updates one after another with the other policies offloaded (a no-op on
    CPU); the parameters equal those of side-by-side updates."""
    runs = {}
    for strategy in ("split", "colocate"):
        cfg = _config(tmp_path, strategy, "training.iterations=2", "ray.enabled=false", "eval.every=0",
                      f"scheduling.strategy={strategy}")
        runs[strategy] = Path(TrainingRun(cfg, progress=False).run()["run_dir"]) / "step-2"
    for policy in ("solver_model", "verifier_model"):
        a, b = _weights(runs["split"], policy), _weights(runs["colocate"], policy)
        assert all(torch.equal(a[k], b[k]) for k in a), policy
