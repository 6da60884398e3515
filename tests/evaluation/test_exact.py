"""Exact evaluation: reference values computed with OpenSpiel, through the API users call (bots,
plain functions, checkpoints), agreement with sampled games, and the one-line refusals."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from mas.agents import bots
from mas.agents.backends.base import SamplingParams
from mas.agents.backends.sampling import answer_distribution, branch_points
from mas.cli import main
from mas.evaluation.exact import exact_evaluate, exact_report, model_policies
from mas.evaluation.games import mean_interval, play_matches
from mas.evaluation.loading import load_policy
from mas.games import make
from mas.orchestration.rollout import RolloutEngine
from helpers import cli_error_line as error_line


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MAS_CACHE", str(tmp_path / "cache"))  # the CFR policies: seconds to solve


def test_nim_perfect_player_wins_where_theory_says():
    # piles 1, 2, 3 have nim-sum 0: the second player wins with perfect play, whatever the first does
    env = make({"name": "nim", "params": {"pile_sizes": "1;2;3"}})
    report = exact_report(env, ["random", "perfect"], ["random", "perfect"])
    assert report.rows["perfect"]["perfect"][1]["win"] == pytest.approx(1.0)
    assert report.rows["perfect"]["random"][1]["win"] == pytest.approx(1.0)
    assert report.rows["perfect"]["random"]["mean"]["optimal_mass"] == pytest.approx(1.0)
    assert report.rows["random"]["perfect"][0]["loss"] == pytest.approx(1.0)


@pytest.mark.parametrize("prompt", ["compact", pytest.param("full", marks=pytest.mark.slow)])
def test_tic_tac_toe_random_and_perfect_players_match_the_reference_values(prompt):
    # compact prompts without history show the position alone: the walk visits its 5,478
    # positions; full prompts (slow: about a minute) make each of the 549,946 histories a node
    env = make({"name": "tic_tac_toe", "prompt": prompt, "history": False})
    report = exact_report(env, ["random", "perfect"], ["random", "perfect"])
    rr = report.rows["random"]["random"]
    assert rr[0]["non_loss"] == pytest.approx(0.712, abs=5e-4) and rr[1]["non_loss"] == pytest.approx(0.415, abs=5e-4)
    assert rr["mean"]["non_loss"] == pytest.approx(0.563, abs=5e-4)
    assert rr[0]["win"] == pytest.approx(0.585, abs=5e-4) and rr[1]["win"] == pytest.approx(0.288, abs=5e-4)
    pr = report.rows["perfect"]["random"]
    assert pr[0]["non_loss"] == pytest.approx(1.0) and pr[1]["non_loss"] == pytest.approx(1.0)
    assert pr[0]["win"] == pytest.approx(0.968, abs=5e-4) and pr[1]["win"] == pytest.approx(0.777, abs=5e-4)
    assert pr["mean"]["optimal_mass"] == pytest.approx(1.0)  # every move it makes is optimal
    assert 0.0 < rr["mean"]["optimal_mass"] < 1.0
    assert report.rows["perfect"]["perfect"]["mean"]["draw"] == pytest.approx(1.0)  # the game is a draw
    assert report.states == (5_478 if prompt == "compact" else 549_946)


def test_a_model_scored_on_positions_gets_the_figures_of_the_walk_over_histories(tiny_path):
    from mas.evaluation.exact import ExactEvaluation
    from mas.evaluation.exact.tree import build_tree

    env = make({"name": "nim", "params": {"pile_sizes": "2;3;4"}, "prompt": "compact", "history": False})
    loaded = load_policy(tiny_path, constrained=True, max_new_tokens=8, threads=2)
    agent = replace(loaded.agent, sampling=SamplingParams(temperature=1.0, max_new_tokens=8))
    policies = model_policies("tiny", loaded.handle, loaded.tokenizer, agent, max_prompts=100_000)
    merged = ExactEvaluation(env, list(policies), ["random", "perfect"])
    histories = build_tree(env, [], merge_positions=False)
    assert len(merged.tree) < len(histories) / 3  # piles are reached by many move orders
    by_positions = merged.report()
    merged.tree = build_tree(env, [p.observer for p in policies] + [merged.theirs[1]], merge_positions=False)
    for observer in [policies[0].source, merged.theirs[1]]:
        observer.resolve(merged.tree)
    by_histories = merged.report()
    assert by_histories.states == len(histories)
    for name, rows in by_positions.rows.items():
        for opponent, figures in rows.items():
            for seat in (0, 1, "mean"):
                for key, value in figures[seat].items():
                    assert by_histories.rows[name][opponent][seat][key] == pytest.approx(value, abs=1e-9)


def test_kuhn_reference_values_for_bots_and_a_plain_function():
    from open_spiel.python import policy as openspiel_policy
    from open_spiel.python.algorithms.best_response import BestResponsePolicy

    env = make("kuhn_poker")
    uniform = openspiel_policy.UniformRandomPolicy(env.game)
    responses = {p: BestResponsePolicy(env.game, p, uniform) for p in range(2)}

    def best_response(state, seat):  # a plain function: OpenSpiel's best response to uniform play
        probs = responses[seat].action_probabilities(state.native(), seat)
        return {state.action_text(a, seat): p for a, p in probs.items()}

    result = exact_evaluate(env, best_response, "random")
    assert result[0]["payoff"] == pytest.approx(0.5, abs=1e-9)
    assert result[1]["payoff"] == pytest.approx(5 / 12, abs=1e-9)  # +0.4167
    report = exact_report(env, ["random", "cfr"], ["random"])
    assert report.nash_conv["random"] == pytest.approx(0.9167, abs=1e-4)
    assert report.nash_conv["cfr"] < 0.01
    # OpenSpiel's CFR after 2,000 iterations: +0.1225 first, +0.1668 second; the cfr bot runs fewer
    cfr = report.rows["cfr"]["random"]
    assert cfr[0]["payoff"] == pytest.approx(0.1225, abs=0.01) and cfr[1]["payoff"] == pytest.approx(0.1668, abs=0.01)


def test_leduc_uniform_nash_conv():
    report = exact_report(make("leduc_poker"), ["random"], ["random"])
    assert report.nash_conv["random"] == pytest.approx(4.7472, abs=1e-4)
    assert report.rows["random"]["random"]["mean"]["payoff"] == pytest.approx(0.0, abs=1e-12)


def test_greedy_follows_the_token_by_token_argmax_not_the_best_whole_answer():
    # answers A = [1, 2, eos], B = [1, 3, eos], C = [4, eos]: token 1 is preferred first (0.6), but
    # then splits 0.5/0.5, so C (0.4) is the most likely whole answer while greedy decoding says A
    candidates = [[1, 2, 9], [1, 3, 9], [4, 9]]
    points = branch_points(candidates)
    assert points == {(): [1, 4], (1,): [2, 3]}
    logp = {(): torch.log(torch.tensor([0.6, 0.4])), (1,): torch.log(torch.tensor([0.5, 0.5]))}
    assert answer_distribution(candidates, points, logp, greedy=True) == [1.0, 0.0, 0.0]
    assert answer_distribution(candidates, points, logp, greedy=False) == pytest.approx([0.3, 0.3, 0.4])


@pytest.mark.parametrize("history", [False, True])
def test_a_tiny_models_exact_payoffs_agree_with_sampled_games(tiny_path, history):
    env = make({"name": "kuhn_poker", "prompt": "compact", "history": history})
    loaded = load_policy(tiny_path, constrained=True, max_new_tokens=8, threads=2)
    agent = replace(loaded.agent, sampling=SamplingParams(temperature=1.0, max_new_tokens=8))
    sampled_policy, greedy = model_policies("tiny", loaded.handle, loaded.tokenizer, agent, max_prompts=10_000)
    report = exact_report(env, [sampled_policy, greedy], ["random"])
    engine = RolloutEngine(env, *loaded.engine_parts())
    games = 3000
    result, episodes = play_matches(engine, agent, bots.RandomBot(), 2, games, seed=11)
    for seat in range(2):
        returns = [ep.game_returns[seat] for k, ep in enumerate(episodes) if k % 2 == seat]
        mean, lo, hi = mean_interval(returns, z=3.29)  # a 99.9% interval
        exact = report.rows[sampled_policy.name]["random"][seat]["payoff"]
        assert lo <= exact <= hi, (seat, exact, mean, lo, hi)
    # greedy play is deterministic given the deal: its value is a weighted sum of a few payoffs
    assert report.rows[greedy.name]["random"][0]["payoff"] != report.rows[sampled_policy.name]["random"][0]["payoff"]
    assert report.prompts["tiny"] == 12  # one prompt per information state of Kuhn


def test_refusals_are_one_line():
    env = make("tic_tac_toe")
    with pytest.raises(ValueError, match="no action distribution"):
        exact_evaluate(env, "mcts:10", "random")
    with pytest.raises(ValueError, match="perfect-information"):
        exact_evaluate(make("kuhn_poker"), "perfect", "random")
    with pytest.raises(ValueError, match="more than 1,000 states"):
        exact_evaluate(env, "random", "random", max_states=1000)
    workflow = make({"name": "workflow", "workflow": {"type": "loop", "agents": ["solver", "verifier"], "max_rounds": 2},
                     "task": {"name": "arithmetic", "max_value": 10}})
    with pytest.raises(ValueError, match="cannot enumerate"):
        exact_evaluate(workflow, "random", "random")


def test_mas_eval_exact_prints_the_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "exact.json"
    assert main(["eval", "--exact", "--player", "random", "--env", "kuhn_poker", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "NashConv 0.9167" in text and "exact evaluation: player random on kuhn_poker" in text
    data = json.loads(out.read_text())["exact"]["kuhn_poker"]
    assert set(data) >= {"env", "perfect_information", "policies", "nash_conv", "exploitability", "states", "prompts"}
    assert data["policies"]["random"]["cfr"]["0"]["payoff"] == pytest.approx(-0.1670, abs=0.01)
    assert "mcts:5" in error_line(capsys, ["eval", "--exact", "--player", "mcts:5", "--env", "kuhn_poker"])
    assert "perfect-information" in error_line(capsys, ["eval", "--exact", "--player", "random", "--env",
                                                        "kuhn_poker", "--opponents", "perfect"])


def test_a_suite_row_can_ask_for_exact_evaluation(tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text("player: random\nenvs:\n  - env: kuhn_poker\n    exact: true\n"
                     "  - env: tic_tac_toe\n    opponents: [random]\n    games: 4\n")
    out = tmp_path / "s.json"
    assert main(["eval", "--suite", str(suite), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["envs"]["tic_tac_toe"]["random"]["games"] == 4  # the sampled row
    assert data["exact"]["kuhn_poker"]["nash_conv"]["random"] == pytest.approx(0.9167, abs=1e-4)


def test_a_run_with_eval_exact_logs_exact_figures_and_adds_them_to_the_final_table(tmp_path, capsys):
    from mas.run import TrainingRun
    from mas.validation import load_config

    cfg = load_config("configs/kuhn_selfplay.yaml", [
        "rollout.episodes=16", "training.iterations=2", "eval.every=1", "eval.games=4", "eval.exact=true",
        "eval.compare_initial=true", "ray.enabled=false", f"run.dir={tmp_path / 'run'}"])
    summary = TrainingRun(cfg, progress=False).run()
    first, last = summary["history"][0], summary["history"][-1]
    assert first["iteration"] == 0 and last["iteration"] == 2
    for row in (first, last):
        assert 0.0 <= row["exact/sampled/nash_conv"] <= 2.0 and "exact/greedy/cfr/mean/payoff" in row
    exact = summary["final_eval"]["exact"]
    assert exact["initial"]["nash_conv"] == {"main (T=1)": first["exact/sampled/nash_conv"],
                                             "main (greedy)": first["exact/greedy/nash_conv"]}
    assert exact["trained"]["nash_conv"]["main (T=1)"] == last["exact/sampled/nash_conv"]
    assert "final exact evaluation (trained model)" in capsys.readouterr().out


def test_eval_exact_refuses_free_text_agents_before_training(tmp_path):
    from mas.run import TrainingRun
    from mas.validation import load_config

    cfg = load_config("configs/kuhn_selfplay.yaml", ["eval.exact=true", "agents.0.sampling.constrained=false",
                                                     "ray.enabled=false", f"run.dir={tmp_path / 'run'}"])
    with pytest.raises(ValueError, match="sampling.constrained: true"):
        TrainingRun(cfg, progress=False).run()


def test_a_checkpoint_is_evaluated_exactly_against_another_checkpoint(tiny_path):
    env = make({"name": "kuhn_poker", "prompt": "compact", "history": False})
    result = exact_evaluate(env, tiny_path, tiny_path)  # the same weights on both sides: a zero-sum tie
    assert result["mean"]["payoff"] == pytest.approx(0.0, abs=1e-9)
    assert result[0]["payoff"] == pytest.approx(-result[1]["payoff"], abs=1e-9) and result[0]["payoff"] != 0.0
