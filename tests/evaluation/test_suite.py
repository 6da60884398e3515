"""`mas eval --suite`: games x opponents x seats for one player, one table, repeatable JSON."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mas.agents import bots
from mas.cli import main
from mas.evaluation import suite as suites
from mas.evaluation.games import play_matches
from mas.games import make
from mas.orchestration.rollout import RolloutEngine
from helpers import cli_error_line as error_line

SUITE = """\
player: random
games: 6
seed: 3
envs:
  - env: kuhn_poker
    opponents: [random, cfr]
  - env: tic_tac_toe
    opponents: [mcts:5]
    games: 4
    seats: [1]
"""


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MAS_CACHE", str(tmp_path / "cache"))  # the Kuhn CFR policy: ~0.05 s to solve


def write(tmp_path, text: str, name: str = "suite.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)



def test_suite_runs_one_table_and_repeatable_json(tmp_path, capsys):
    path = write(tmp_path, SUITE)
    outputs = []
    for i, seed_args in enumerate([[], [], ["--player", "mcts:5"]]):
        out = tmp_path / f"r{i}.json"
        assert main(["eval", "--suite", path, "--json", str(out), *seed_args]) == 0
        outputs.append(out.read_text())
    printed = capsys.readouterr().out
    runs = printed.split("player ")[1:]
    assert len(runs) == 3 and runs[0] == runs[1]
    first = runs[0]
    assert first.count("opponent") == 1  # one table ...
    rows = [line.split()[:3] for line in first.splitlines() if line.startswith(("kuhn_poker", "tic_tac_toe"))]
    assert rows == [["kuhn_poker", "random", "6"], ["kuhn_poker", "cfr", "6"], ["tic_tac_toe", "mcts:5", "4"]]
    assert "mean chips" in first and "cfr on kuhn_poker" in first and "exploitability" in first

    assert outputs[0] == outputs[1]  # same suite, same seed: the same bytes
    assert outputs[2] != outputs[0]  # the command line's player overrides the suite's
    data = json.loads(outputs[0])
    assert data["player"] == "random" and data["seed"] == 3 and data["cfr"]["kuhn_poker"]["exploitability"] < 0.01
    kuhn, ttt = data["envs"]["kuhn_poker"], data["envs"]["tic_tac_toe"]["mcts:5"]
    for result in (kuhn["random"], kuhn["cfr"], ttt):
        assert {"win", "draw", "loss", "invalid", "per_seat"} <= set(result)
        assert result["win"] + result["draw"] + result["loss"] == pytest.approx(1.0)
    assert set(kuhn["cfr"]["per_seat"]) == {"0", "1"} and kuhn["cfr"]["per_seat"]["0"]["games"] == 3
    assert set(ttt["per_seat"]) == {"1"} and ttt["per_seat"]["1"]["games"] == 4  # seats: [1]


def test_other_seed_other_results(tmp_path):
    path = write(tmp_path, SUITE)
    a = suites.run(suites.build(suites.load_suite(path), "random"))
    b = suites.run(suites.build(suites.load_suite(write(tmp_path, SUITE.replace("seed: 3", "seed: 4"), "b.yaml")),
                               "random"))
    assert suites.results_json(a) != suites.results_json(b)


def test_all_seats_is_play_matches():
    """A row over every seat is exactly `play_matches` with the row's seed."""
    suite = suites.single_env_suite("tic_tac_toe", "random", 8, seed=5)
    (match,) = suites.build(suite, "mcts:5")
    (row,) = suites.run([match])
    env = make("tic_tac_toe")
    direct, _ = play_matches(RolloutEngine(env, {}, {}), bots.make("mcts:5", env), bots.make("random", env), 2, 8,
                             suites.row_seed(5, "tic_tac_toe", "random"))
    assert row.result.to_json() == direct.to_json()


def test_shipped_suites_load_and_run(tmp_path):
    files = sorted(Path("configs/eval").glob("*.yaml"))
    assert files
    for file in files:
        suite = suites.load_suite(str(file))
        for entry in suite.entries:
            entry.games = 2
        rows = suites.run(suites.build(suite, suite.player or "random"))
        assert len(rows) == sum(len(e.opponents) for e in suite.entries)


@pytest.mark.parametrize("text, words", [
    (SUITE + "rounds: 3\n", "unknown key 'rounds' (allowed: player, policy, games, seed, seats, envs)"),
    (SUITE.replace("    games: 4\n", "    gmaes: 4\n"), "envs[1]: unknown key 'gmaes'"),
    (SUITE.replace("env: tic_tac_toe", "env: tic_tac_tow"), "envs[1]: unknown env 'tic_tac_tow'"),
    (SUITE.replace("[mcts:5]", "[alphazero]"), "envs[1]: opponents: unknown bot 'alphazero'"),
    (SUITE.replace("[mcts:5]", "[cfr]"), "envs[1]: bot 'cfr' plays only kuhn_poker and leduc_poker"),
    (SUITE.replace("[mcts:5]", "[checkpoint:runs/x/final/main]"), "served by a worker"),
    (SUITE.replace("seats: [1]", "seats: [2]"), "envs[1]: seats [2]: 'tic_tac_toe' has seats 0..1"),
    (SUITE.replace("games: 6", "games: 0"), "games: an integer >= 1, got 0"),
    (SUITE.replace("player: random", "player: greedy"), "player: unknown bot 'greedy'"),
    (SUITE.replace("player: random\n", ""), "which side to evaluate: --policy"),
    (SUITE.replace("envs:", "envs: [\n"), "not valid YAML"),
    ("- kuhn_poker\n", "a mapping with keys player"),
])
def test_bad_suite_is_one_line(tmp_path, capsys, text, words):
    path = write(tmp_path, text)
    err = error_line(capsys, ["eval", "--suite", path])
    assert words in err
    assert path in err or "which side" in words


def test_player_and_policy_errors(tmp_path, capsys):
    assert "not both" in error_line(capsys, ["eval", "--player", "random", "--policy", "tiny-xs"])
    assert "which side to evaluate" in error_line(capsys, ["eval", "--env", "kuhn_poker"])
    assert "--player: unknown bot 'mcts'" in error_line(capsys, ["eval", "--player", "mcts"])
    assert "cannot read" in error_line(capsys, ["eval", "--suite", str(tmp_path / "none.yaml"), "--player", "random"])
