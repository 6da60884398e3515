"""End-to-end runs with tiny budgets: through Ray, in-process resume exactness, checkpoint format,
and that unparseable answers are penalized and counted without stopping a run."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from mas.validation import load_config
from mas.run import TrainingRun
from mas.training import checkpoint

QUICK = [
    "rollout.episodes=8",
    "eval.every=2",
    "eval.games=4",
    "eval.final_games=0",
    "run.save_every=2",
    "training.mini_batches=2",
]


def _train(tmp_path: Path, name: str, *extra: str, config: str = "configs/quickstart.yaml"):
    cfg = load_config(config, [*QUICK, f"run.dir={tmp_path / name}", *extra])
    return TrainingRun(cfg, progress=False).run()


def _params(step_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(step_dir / "main" / "model.safetensors"))


def test_short_run_through_ray(tmp_path, ray_session):
    summary = _train(tmp_path, "ray", "training.iterations=2", "ray.enabled=true")
    run_dir = Path(summary["run_dir"])
    assert checkpoint.committed_steps(run_dir) == [2]
    last = summary["history"][-1]
    assert last["iteration"] == 2
    assert "train/main/loss" in last and "eval/random/non_loss" in last
    assert (run_dir / "config.yaml").is_file()
    assert any(p.name.startswith("events.out.tfevents") for p in run_dir.iterdir())


def test_resume_gives_identical_parameters(tmp_path):
    _train(tmp_path, "straight", "training.iterations=4", "ray.enabled=false")
    _train(tmp_path, "split", "training.iterations=2", "ray.enabled=false")
    split = tmp_path / "split"
    cfg = load_config("configs/quickstart.yaml",
                      [*QUICK, f"run.dir={split}", "training.iterations=4", "ray.enabled=false", f"resume={split}"])
    TrainingRun(cfg, progress=False).run()
    a, b = _params(tmp_path / "straight" / "step-4"), _params(split / "step-4")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # and training did change the weights
    assert not all(torch.equal(a[k], _params(tmp_path / "straight" / "step-2")[k]) for k in a)


def test_checkpoint_loads_with_plain_transformers(tmp_path):
    summary = _train(tmp_path, "ckpt", "training.iterations=1", "ray.enabled=false", "eval.every=0")
    final = Path(summary["run_dir"]) / "final"
    assert (final / "COMMITTED").is_file() and (final / "trainer_state" / "controller.pt").is_file()
    model = AutoModelForCausalLM.from_pretrained(final / "main")
    out = model(input_ids=torch.tensor([[1, 2, 3]]))
    assert out.logits.shape[-1] == model.config.vocab_size


def test_unparseable_answers_are_invalid_moves_not_crashes(tmp_path):
    # free decoding from an untrained model: almost every answer is garbage
    summary = _train(tmp_path, "garbage", "training.iterations=1", "ray.enabled=false",
                     "agents.0.sampling.constrained=false", "agents.0.sampling.max_new_tokens=4", "eval.exact=false")
    last = summary["history"][-1]
    assert last["rollout/invalid_rate"] > 0.5
    # the offender's penalty (-1 stake - 10) shows in the mean reward of the seats
    assert min(last["reward/seat0"], last["reward/seat1"]) < -3
    assert last["eval/random/invalid"] > 0.5


@pytest.mark.parametrize("estimator,args,check", [
    ("rae", [], lambda state: len(state["baselines"]) == 2),  # kuhn_poker seats 0 and 1
    ("spo", ["training.estimator_args.min_reward=-3", "training.estimator_args.max_reward=3",
             "training.estimator_args.key=[env,seat]"],
     lambda state: len(state["tracker"]["params"]) == 2 and len(state["stored"]) == 2),
])
def test_stateful_estimator_resumes_exactly(tmp_path, estimator, args, check):
    """rae's baselines and spo's task posteriors (with each task's last sample) travel in the
    checkpoint: a resumed run equals a straight one."""
    base = [f"training.estimator={estimator}", *args, "ray.enabled=false", "eval.every=0"]
    cfg = "configs/kuhn_selfplay.yaml"
    _train(tmp_path, "straight", *base, "training.iterations=4", config=cfg)
    _train(tmp_path, "split", *base, "training.iterations=2", config=cfg)
    split = tmp_path / "split"
    TrainingRun(load_config(cfg, [*QUICK, *base, f"run.dir={split}", "training.iterations=4", f"resume={split}"]),
                progress=False).run()
    a, b = _params(tmp_path / "straight" / "step-4"), _params(split / "step-4")
    assert all(torch.equal(a[k], b[k]) for k in a)
    states = [torch.load(d / "step-4" / "trainer_state" / "controller.pt", weights_only=False)["estimator"]
              for d in (tmp_path / "straight", split)]
    assert states[0] == states[1] and check(states[0])


def test_ray_false_runs_where_ray_is_not_installed(tmp_path):
    """The GPU machines have no Ray: `ray.enabled=false` must never import it."""
    import subprocess
    import sys

    script = ("import sys; sys.modules['ray'] = None  # any `import ray` now raises ImportError\n"
              "from mas.cli import main\n"
              f"main(['train', 'configs/quickstart.yaml', 'ray.enabled=false', 'training.iterations=1', "
              f"'rollout.episodes=4', 'eval.every=0', 'eval.final_games=0', 'run.dir={tmp_path / 'run'}', "
              "'--no-progress'])\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "final" / "main" / "config.json").is_file()


RANGE = ["training.estimator_args.min_reward=-3", "training.estimator_args.max_reward=3"]


@pytest.mark.parametrize("name,args", [
    ("dr_grpo", []), ("ngrpo", ["training.estimator_args.max_reward=3"]), ("bnpo", RANGE), ("agrae", RANGE),
    ("mapo", []), ("hapo_tlga", []), ("gigpo", []), ("hgpo", []), ("mc_grpo", []), ("gdpo", []), ("copo", []),
    ("spo", [*RANGE, "training.estimator_args.key=[env,seat]"]),
])
def test_each_grpo_family_estimator_trains_the_quickstart(tmp_path, name, args):
    # the quickstart's estimator_args are mars's (gamma): the other estimators start without them
    text = Path("configs/quickstart.yaml").read_text()
    config = tmp_path / "quickstart.yaml"
    config.write_text(re.sub(r"\n  estimator_args:\n(    .*\n)+", "\n", text))
    assert "estimator_args" not in config.read_text()
    summary = _train(tmp_path, name, f"training.estimator={name}", *args, "training.iterations=2",
                     "ray.enabled=false", "eval.every=0", config=str(config))
    last = summary["history"][-1]
    assert last["iteration"] == 2 and last["train/main/optimizer_steps"] == 2
