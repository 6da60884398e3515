"""`mas eval --player` agrees with OpenSpiel's own match loop on bot-versus-bot matches.

For each matchup, 1,000 games (500 per seat) go through `run_eval` (mas envs, text actions, the
rollout engine, seat bookkeeping, JSON) and 1,000 through `open_spiel.python.algorithms.evaluate_bots`
with OpenSpiel's bots on raw pyspiel states:

- tic_tac_toe, mcts:10 against random: `mcts.MCTSBot` (uct_c 2, `RandomRolloutEvaluator` with 10
  rollouts, 10 simulations) against `uniform_random.UniformRandomBot`;
- kuhn_poker, mcts:10 against cfr: the same MCTSBot against `bots.policy.PolicyBot` over the same
  CFR average policy (`pyspiel.TabularPolicy` looked up by OpenSpiel from the information state).

Fairness on Kuhn: our MCTS bot never sees the opponent's card; it searches one determinization, the
state resampled from its information state (`resample_from_infostate`). OpenSpiel's MCTSBot handed
the true state would cheat, so its side gets the same wrapper (`DeterminizedMCTS`) and plays the
same algorithm on the same information.

Agreement: for win, draw and loss (overall and per seat) the two 95% Wilson intervals overlap, and
for poker the two 95% intervals of the measured side's mean chips overlap. The runs are seeded,
so the outcome is deterministic; the rates are printed (`pytest -s`). Runtime ~35 s on one core
(tic_tac_toe ~25 s, Kuhn ~3 s), under the ~60 s this project marks slow.
"""
from __future__ import annotations

import json
from argparse import Namespace

import numpy as np
import pyspiel
from open_spiel.python.algorithms import evaluate_bots, mcts
from open_spiel.python.bots.policy import PolicyBot
from open_spiel.python.bots.uniform_random import UniformRandomBot

from mas.agents import cfr
from mas.evaluation.cli import run_eval
from mas.evaluation.games import summarize

GAMES = 1000
SIMULATIONS = 10


class DeterminizedMCTS(pyspiel.Bot):
    """OpenSpiel's MCTSBot searching from the state resampled from the mover's information state,
    as `mas.agents.bots.MCTSBot` does in imperfect-information games."""

    def __init__(self, game, rs: np.random.RandomState):
        pyspiel.Bot.__init__(self)
        self._rs = rs
        self._imperfect = game.get_type().information != pyspiel.GameType.Information.PERFECT_INFORMATION
        self._mcts = mcts.MCTSBot(game, uct_c=2, max_simulations=SIMULATIONS,
                                  evaluator=mcts.RandomRolloutEvaluator(n_rollouts=10, random_state=rs),
                                  random_state=rs)

    def restart_at(self, state):
        pass

    def inform_action(self, state, player_id, action):
        pass

    def step(self, state):
        if self._imperfect:
            state = state.resample_from_infostate(state.current_player(), self._rs.random_sample)
        return self._mcts.step(state)


class _StatePolicy:
    """pyspiel.TabularPolicy with the (state, player) signature that PolicyBot calls."""

    def __init__(self, policy):
        self._policy = policy

    def action_probabilities(self, state, player_id=None):
        return self._policy.action_probabilities(state)


def openspiel_results(game_name: str, make_player, make_opponent, seed: int) -> dict:
    """`GAMES` games through OpenSpiel's evaluate_bots, the measured side alternating seats."""
    game = pyspiel.load_game(game_name)
    rng = np.random.RandomState(seed)
    by_seat: dict[int, list[tuple[str, float]]] = {0: [], 1: []}
    lineups = {seat: [make_player(game, seat, rng) if s == seat else make_opponent(game, s, rng) for s in (0, 1)]
               for seat in (0, 1)}
    for i in range(GAMES):
        seat = i % 2
        returns = evaluate_bots.evaluate_bots(game.new_initial_state(), lineups[seat], rng)
        mine, theirs = returns[seat], returns[1 - seat]
        by_seat[seat].append(("win" if mine > theirs else "loss" if mine < theirs else "draw", float(mine)))
    return {**summarize(by_seat[0] + by_seat[1]), "per_seat": {str(s): summarize(r) for s, r in by_seat.items()}}


def mas_results(tmp_path, env: str, player: str, opponent: str, seed: int) -> dict:
    out = tmp_path / f"{env}.json"
    args = Namespace(policy=None, player=player, suite=None, env=env, opponents=opponent, games=GAMES,
                     temperature=0.0, constrained=None, max_new_tokens=None, seed=seed, threads=None,
                     json_path=str(out))
    assert run_eval(args) == 0
    return json.loads(out.read_text())["opponents"][opponent]


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def assert_agree(ours: dict, theirs: dict, keys: tuple[str, ...]) -> None:
    for scope, a, b in [("all", ours, theirs)] + [(f"seat {s}", ours["per_seat"][s], theirs["per_seat"][s])
                                                   for s in ("0", "1")]:
        for key in keys:
            print(f"{scope:>7} {key:<11} mas {a[key]:+.3f} {np.round(a[key + '_ci'], 3)}   "
                  f"openspiel {b[key]:+.3f} {np.round(b[key + '_ci'], 3)}")
            assert overlap(a[f"{key}_ci"], b[f"{key}_ci"]), (scope, key, a[key], b[key])


def test_mcts_against_random_on_tic_tac_toe(tmp_path):
    ours = mas_results(tmp_path, "tic_tac_toe", f"mcts:{SIMULATIONS}", "random", seed=1)
    theirs = openspiel_results("tic_tac_toe", lambda g, s, rng: DeterminizedMCTS(g, rng),
                               lambda g, s, rng: UniformRandomBot(s, rng), seed=2)
    assert ours["games"] == theirs["games"] == GAMES
    assert_agree(ours, theirs, ("win", "draw", "loss"))
    assert ours["invalid"] == 0.0
    assert ours["win"] > 0.7  # and the measurement means something: MCTS clearly beats random


def test_mcts_against_cfr_on_kuhn(tmp_path, monkeypatch):
    monkeypatch.setenv("MAS_CACHE", str(tmp_path / "cache"))
    ours = mas_results(tmp_path, "kuhn_poker", f"mcts:{SIMULATIONS}", "cfr", seed=1)
    table = cfr.load_or_solve("kuhn_poker").table
    policy = _StatePolicy(pyspiel.TabularPolicy(table))
    theirs = openspiel_results("kuhn_poker", lambda g, s, rng: DeterminizedMCTS(g, rng),
                               lambda g, s, rng: PolicyBot(s, rng, policy), seed=2)
    assert_agree(ours, theirs, ("win", "loss", "mean_return"))
    assert ours["draw"] == theirs["draw"] == 0.0  # Kuhn has no draws
