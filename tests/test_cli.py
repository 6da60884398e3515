"""User mistakes: one line naming file, key and what is allowed; exit status 2; no traceback."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


from helpers import cli_error_line as _error_line

GOOD = Path("configs/quickstart.yaml").read_text()




def _swap(old: str, new: str) -> str:
    assert old in GOOD, f"configs/quickstart.yaml no longer contains {old!r}"
    return GOOD.replace(old, new)


def _write(tmp_path, text) -> str:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return str(path)


def test_misspelt_key(tmp_path, capsys):
    path = _write(tmp_path, _swap("estimator: mars", "estimater: mars"))
    err = _error_line(capsys, ["train", path])
    assert path in err and "training.estimater" in err and "did you mean 'estimator'" in err
    assert "iterations" in err  # lists what is allowed


def test_wrong_type(tmp_path, capsys):
    bad = re.sub(r"iterations: \d+", "iterations: many", GOOD)
    assert bad != GOOD
    path = _write(tmp_path, bad)
    err = _error_line(capsys, ["train", path])
    assert "training.iterations" in err and "many" in err


def test_wrong_type_from_command_line(capsys):
    err = _error_line(capsys, ["train", "configs/quickstart.yaml", "rollout.episodes=lots"])
    assert "rollout.episodes" in err


def test_unknown_env(tmp_path, capsys):
    path = _write(tmp_path, _swap("name: tic_tac_toe", "name: tic_tac_tow"))
    err = _error_line(capsys, ["train", path])
    assert "env.name" in err and "tic_tac_tow" in err and "kuhn_poker" in err


def test_missing_file(capsys):
    err = _error_line(capsys, ["train", "configs/does_not_exist.yaml"])
    assert "does_not_exist.yaml" in err and "not found" in err


def test_agent_naming_missing_policy(tmp_path, capsys):
    path = _write(tmp_path, _swap("policy: main", "policy: mian"))
    err = _error_line(capsys, ["train", path])
    assert "agents[0].policy" in err and "mian" in err and "main" in err


def test_unknown_bot_and_estimator(tmp_path, capsys):
    err = _error_line(capsys, ["train", "configs/quickstart.yaml", "training.estimator=grpoo"])
    assert "training.estimator" in err and "grpo" in err
    err = _error_line(capsys, ["train", "configs/quickstart.yaml", "eval.opponents=[random,alphazero]"])
    assert "alphazero" in err and "mcts:N" in err


def test_missing_model_folder(tmp_path, capsys):
    err = _error_line(capsys, ["train", "configs/quickstart.yaml", "policies.main.model=./no/such/model"])
    assert "policies.main.model" in err and "tiny-xs" in err


def test_resume_of_missing_run(capsys):
    err = _error_line(capsys, ["train", "configs/quickstart.yaml", "resume=runs/never-ran"])
    assert "resume" in err and "never-ran" in err


def test_eval_bad_policy(capsys):
    err = _error_line(capsys, ["eval", "--policy", "runs/none/final/main"])
    assert "--policy" in err


def test_real_process_exit_status(tmp_path):
    """The installed entry point, as a user runs it: status 2 and a single stderr line."""
    path = _write(tmp_path, _swap("estimator: mars", "estimater: mars"))
    proc = subprocess.run([sys.executable, "-m", "mas.cli", "train", path], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "estimater" in proc.stderr
