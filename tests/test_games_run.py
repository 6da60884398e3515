"""One policy trained on a mixture of games, and against a pool of its own checkpoints (with Elo
ratings, saved with the checkpoint: a resumed run equals a straight one)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch
from safetensors.torch import load_file

from mas.validation import load_config
from mas.run import TrainingRun

QUICK = ["ray.enabled=false", "eval.final_games=0"]


def test_generalist_trains_on_three_games(tmp_path):
    cfg = load_config("configs/generalist.yaml", [*QUICK, f"run.dir={tmp_path / 'gen'}", "training.iterations=2",
                                                  "rollout.episodes=20", "eval.every=2", "eval.games=4"])
    run = TrainingRun(cfg, progress=False)
    specs = run.episode_specs(0)
    assert Counter(s.env.id for s in specs) == {"tic_tac_toe": 8, "kuhn_poker": 6, "hanabi_mini": 6}
    summary = run.run()
    last = summary["history"][-1]
    for env in ("tic_tac_toe", "kuhn_poker", "hanabi_mini"):
        assert f"reward/{env}/mean_game_return" in last
    assert "eval/tic_tac_toe/random/non_loss" in last and "eval/hanabi_mini/selfplay_score" in last
    assert last["train/main/sequences"] > 0


def test_pool_of_past_checkpoints_with_elo_resumes_exactly(tmp_path):
    base = [*QUICK, "rollout.episodes=16", "eval.every=0", "run.save_every=1"]
    straight = TrainingRun(load_config("configs/pool_tictactoe.yaml",
                                       [*base, f"run.dir={tmp_path / 'a'}", "training.iterations=4"]), progress=False)
    history = straight.run()["history"]
    assert [h["pool/members"] for h in history] == [1.0, 2.0, 3.0, 4.0]  # initial, then step-1, step-2, ...
    assert history[-1]["pool/elo/learner"] != 1000.0
    TrainingRun(load_config("configs/pool_tictactoe.yaml", [*base, f"run.dir={tmp_path / 'b'}", "training.iterations=2"]),
                progress=False).run()
    resumed = TrainingRun(load_config("configs/pool_tictactoe.yaml", [*base, f"run.dir={tmp_path / 'b'}",
                                                                       "training.iterations=4", f"resume={tmp_path / 'b'}"]),
                          progress=False)
    resumed_history = resumed.run()["history"]
    assert resumed_history[-1]["pool/elo/learner"] == history[-1]["pool/elo/learner"]
    a = load_file(str(tmp_path / "a" / "step-4" / "main" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "step-4" / "main" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = torch.load(Path(tmp_path / "a" / "step-4" / "trainer_state" / "controller.pt"), weights_only=False)
    assert set(state["pool"]["elo"]) >= {"learner", "initial", "step-1", "step-2", "step-3"}
