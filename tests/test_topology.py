"""The agent topology in YAML: shared and separate policies, per-agent settings, and the mistakes a
user can make, each refused with one line (exit 2) before anything starts."""
from __future__ import annotations

import subprocess
import sys

import pytest

from mas.config import ConfigError
from mas.validation import load_config
from mas.orchestration.topology import worker_spec
from helpers import cli_error_line as _error_line

LOOP = "configs/math_loop.yaml"
SHARED = "configs/math_loop_shared.yaml"



def test_agents_on_separate_policies_get_their_own_optimizer_settings():
    cfg = load_config(LOOP)
    solver = worker_spec(cfg, "solver_model", "unused")
    verifier = worker_spec(cfg, "verifier_model", "unused")
    assert solver.optimizer.lr == 0.001 and verifier.optimizer.lr == 0.002


def test_per_agent_optimizer_override_on_an_own_policy():
    cfg = load_config(LOOP, ["agents.1.optimizer={lr: 0.0005, grad_clip: 0.5}"])
    spec = worker_spec(cfg, "verifier_model", "unused")
    assert spec.optimizer.lr == 0.0005 and spec.optimizer.grad_clip == 0.5
    assert worker_spec(cfg, "solver_model", "unused").optimizer.lr == 0.001


def test_ngrpo_brings_its_asymmetric_clip_unless_the_loss_sets_one():
    spec = worker_spec(load_config(LOOP, ["training.estimator=ngrpo"]), "solver_model", "unused")
    assert (spec.loss.clip_low, spec.loss.clip_high) == (0.16, 0.24)
    spec = worker_spec(load_config(LOOP, ["training.estimator=ngrpo", "training.loss.clip_high=0.3"]),
                       "solver_model", "unused")
    assert (spec.loss.clip_low, spec.loss.clip_high) == (0.16, 0.3)
    assert worker_spec(load_config(LOOP), "solver_model", "unused").loss.clip_low == 0.2


def test_copo_needs_the_joint_update():
    with pytest.raises(ConfigError, match="copo blends two advantages in the loss"):
        load_config("configs/seeupo_math.yaml", ["training.estimator=copo"])


def test_per_agent_sampling_on_a_shared_policy_is_allowed():
    cfg = load_config(SHARED, ["agents.1.sampling.temperature=0.3"])
    assert [a.sampling.temperature for a in cfg.agents] == [1.0, 0.3]


@pytest.mark.parametrize("overrides, words", [
    (["agents.0.optimizer={lr: 0.01}"], ["agents[0].optimizer", "shared by agents solver, verifier",
                                         "policies.shared.optimizer"]),
    (["agents.1.policy=missing"], ["agents[1].policy", "'missing'", "allowed: shared"]),
    (["agents.1.name=solver"], ["agents[1].name", "duplicate agent name 'solver'"]),
    (["env.workflow.agents=[solver, critic]"], ["env.workflow.agents[1]", "'critic'"]),
    (["env.workflow.type=tree"], ["env.workflow.type", "allowed: chain, debate, loop, router"]),
    (["env.workflow.agents=[solver]"], ["env.workflow", "exactly 2"]),
    (["policies.shared.strategy=zero"], ["policies.shared.strategy", "allowed: torch, deepspeed"]),
    (["policies.shared.strategy=deepspeed", "policies.shared.zero_stage=3"],
     ["policies.shared.zero_stage", "use zero_stage 1 or 2"]),
    (["policies.shared.backend=tgi"], ["policies.shared.backend", "allowed: hf, vllm"]),
    (["policies.shared.backend=vllm"], ["policies.shared.backend", "needs the vllm extra"]),
    (["scheduling.strategy=pack"], ["scheduling.strategy", "allowed: split, colocate"]),
    (["rollout.opponents={random: 0.5}"], ["rollout.opponents", "workflow"]),
])
def test_topology_mistakes_are_one_line(capsys, overrides, words):
    err = _error_line(capsys, ["train", SHARED, *overrides])
    for word in words:
        assert word in err, err


def test_an_impossible_resource_request_is_refused_before_ray_starts(tmp_path):
    run_dir = tmp_path / "never"
    proc = subprocess.run(
        [sys.executable, "-m", "mas.cli", "train", LOOP, "ray.num_cpus=2", "ray.num_gpus=0",
         "policies.solver_model.resources.num_gpus=1", f"run.dir={run_dir}"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert err.count("\n") == 0 and "needs 1 GPU" in err and "has 0" in err, err
    assert "Ray" not in err.replace("the local Ray instance", "")  # no Ray output: it never started
    assert not run_dir.exists()


def test_too_many_cpus_for_the_cluster():
    from mas.orchestration.scheduler import check_capacity, plan_placement

    cfg = load_config(LOOP, ["policies.solver_model.resources.num_cpus=3"])
    with pytest.raises(ConfigError, match=r"needs 4 CPU \(split; solver_model: 3 CPU / 0 GPU, verifier_model: 1 CPU"):
        check_capacity(plan_placement(cfg), {"CPU": 2.0, "GPU": 0.0})


def test_alternating_schedule_trains_one_group_at_a_time(tmp_path):
    from mas.run import TrainingRun

    cfg = load_config("configs/advevo_chain.yaml", [
        "ray.enabled=false", "rollout.episodes=8", "training.iterations=4", "training.schedule=alternating",
        "training.alternate_every=2", "eval.every=0", f"run.dir={tmp_path / 'alt'}"])
    history = TrainingRun(cfg, progress=False).run()["history"]
    trained = [sorted({k.split("/")[1] for k in h if k.startswith("train/")}) for h in history]
    assert trained == [["attacker_model"], ["attacker_model"], ["defender_model"], ["defender_model"]]


def test_alternating_needs_groups_on_separate_policies(capsys):
    err = _error_line(capsys, ["train", SHARED, "training.schedule=alternating"])
    assert "training.schedule" in err and "policy 'shared' serves agents of several groups" in err
    err = _error_line(capsys, ["train", "configs/kuhn_selfplay.yaml", "training.schedule=alternating"])
    assert "at least two groups" in err
