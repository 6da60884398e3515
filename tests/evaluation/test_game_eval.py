"""Evaluation statistics and match bookkeeping."""
from __future__ import annotations

import math

import pytest

from mas.agents import bots
from mas.evaluation.games import play_matches, summarize, wilson_interval
from mas.games import make
from mas.orchestration.rollout import RolloutEngine


def test_wilson_interval_hand_computed():
    # p = 0.5, n = 100, z = 1.96: centre 0.5, half = 1.96*sqrt(0.0025 + 1.96^2/40000)/(1 + 1.96^2/100)
    lo, hi = wilson_interval(50, 100)
    half = 1.959963984540054 * math.sqrt(0.25 / 100 + 1.959963984540054**2 / 40000) / (1 + 1.959963984540054**2 / 100)
    assert lo == pytest.approx(0.5 - half) and hi == pytest.approx(0.5 + half)
    assert (round(lo, 4), round(hi, 4)) == (0.4038, 0.5962)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_summarize_counts_invalid_as_loss():
    s = summarize([("win", 1), ("draw", 0), ("loss", -1), ("invalid", -1)])
    assert s["games"] == 4
    assert (s["win"], s["draw"], s["loss"], s["invalid"], s["non_loss"]) == (0.25, 0.25, 0.5, 0.25, 0.5)
    assert s["mean_return"] == pytest.approx(-0.25)


def test_matches_split_across_seats_and_are_reproducible():
    env = make("tic_tac_toe")
    engine = RolloutEngine(env, {}, {})
    mcts, rnd = bots.make("mcts:25", env), bots.make("random", env)
    result, episodes = play_matches(engine, mcts, rnd, env.num_seats, games=20, seed=3)
    assert [ep.seat_players.index("mcts:25") for ep in episodes] == [i % 2 for i in range(20)]
    assert result.per_seat[0]["games"] == result.per_seat[1]["games"] == 10
    assert result.overall["non_loss"] >= 0.9  # MCTS hardly loses to random
    again, _ = play_matches(engine, mcts, rnd, env.num_seats, games=20, seed=3)
    assert again.to_json() == result.to_json()
