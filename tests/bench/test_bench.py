"""`mas bench` runs every part at smoke size and writes its tables and JSON; bad options give one
line. No speed figure is asserted here: the figures live in docs/results/performance.md."""
from __future__ import annotations

import json

from helpers import cli_error_line
from mas.cli import main


def test_tiny_bench_runs_every_part(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--tiny", "--workloads", "tictactoe-tiny", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    for title in ("(a) rollout", "(b) update", "(c) scaling"):
        assert title in printed
    result = json.loads(out.read_text())
    (rollout,) = result["rollout"]
    assert rollout["games"] == 4 and rollout["engine"]["generated_tokens"] > 0
    # the naive loop makes one call per move; the engine one per round
    assert rollout["naive"]["generate_calls"] > rollout["engine"]["generate_calls"]
    assert rollout["naive_transformers"]["generate_calls"] > rollout["engine"]["generate_calls"]
    (update,) = result["update"]
    assert update["response_tokens"] > 0 and update["step_s"] > 0 and update["bare_lean_step_s"] > 0
    points = {(r["games"], r["policies"]) for r in result["scaling"]}
    assert points == {(1, 1), (2, 1), (4, 1), (4, 2)}  # policies grow at the rollout's 4 games
    two = next(r for r in result["scaling"] if r["policies"] == 2)
    assert two["peak_rss_gb"] > 0


def test_floor_replays_the_engine_batches(tiny_path):
    from mas.bench.rollout import replay_floor, run_engine
    from mas.bench.workloads import build

    setup = build("kuhn-tiny", threads=1)
    throughput, recorder = run_engine(setup, 3, seed=0)
    assert len(recorder.calls) == throughput.generate_calls
    assert all(len(requests) == len(outputs) for requests, outputs in recorder.calls)
    assert sum(len(g.token_ids) for _, outputs in recorder.calls for g in outputs) == throughput.generated_tokens
    assert replay_floor(setup.worker.backend, recorder.calls) > 0


def test_bad_bench_options_give_one_line(capsys):
    assert "unknown workload 'chess-huge'" in cli_error_line(capsys, ["bench", "--workloads", "chess-huge"])
    assert "unknown part 'io'" in cli_error_line(capsys, ["bench", "--parts", "rollout,io"])
    assert "at least 1" in cli_error_line(capsys, ["bench", "--games", "0"])


def test_transformers_loop_plays_legal_constrained_moves(tiny_path):
    """The transformers baseline plays whole games of legal moves (constrained like the engine),
    four tokens per tic-tac-toe answer (<answer>, the move, </answer>, end)."""
    from mas.bench.rollout import run_naive_transformers
    from mas.bench.workloads import build

    setup = build("tictactoe-tiny", threads=1)
    throughput = run_naive_transformers(setup, 3, seed=0)
    assert throughput.generate_calls >= 3 * 5  # a legal game lasts at least five moves
    assert throughput.generated_tokens == 4 * throughput.generate_calls
