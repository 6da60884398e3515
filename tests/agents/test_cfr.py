"""The `cfr` bot: OpenSpiel's CFR average policy, solved once and cached under $MAS_CACHE.

Every test here uses a fresh cache folder for this module, so the first Kuhn and Leduc loads really
solve: Kuhn in ~0.05 s, Leduc (1,000 iterations) in 12-17 s on one core, hence the Leduc tests are
marked slow (`pytest -m slow tests/agents/test_cfr.py`).
"""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pyspiel
import pytest

from mas import games
from mas.agents import bots, cfr
from helpers import play_out


@pytest.fixture(scope="module", autouse=True)
def fresh_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("mas_cache")
        mp.setenv("MAS_CACHE", str(root))
        yield root



def test_kuhn_solved_once_then_read_from_cache(fresh_cache):
    path = fresh_cache / "cfr" / f"kuhn_poker-{cfr.CFR_ITERATIONS['kuhn_poker']}.json"
    assert not path.exists()
    first = cfr.load_or_solve("kuhn_poker", memo=False)
    assert first.source == "solved" and first.path == path and path.is_file()
    assert not list(path.parent.glob("*.tmp"))  # the atomic write left no temp file behind

    # OpenSpiel's own exploitability of the policy as stored on disk.
    stored = json.loads(path.read_text())
    table = {info: [tuple(pair) for pair in pairs] for info, pairs in stored["policy"].items()}
    value = pyspiel.exploitability(pyspiel.load_game("kuhn_poker"), pyspiel.TabularPolicy(table))
    assert value < 0.01
    assert stored["exploitability"] == pytest.approx(value) == pytest.approx(first.exploitability)
    assert len(table) == 12  # 3 cards x 4 betting histories

    start = time.perf_counter()
    second = cfr.load_or_solve("kuhn_poker", memo=False)
    seconds = time.perf_counter() - start
    assert second.source == "cache" and second.table == first.table
    print(f"kuhn: solved in {first.solve_seconds:.3f} s, read from cache in {seconds:.4f} s, "
          f"exploitability {first.exploitability:.5f}")

    # Proof that the second load reads the file instead of solving: a value only the file holds.
    stored["exploitability"] = 0.123
    path.write_text(json.dumps(stored))
    assert cfr.load_or_solve("kuhn_poker", memo=False).exploitability == 0.123
    # A damaged file is solved again and replaced.
    path.write_text("{not json")
    again = cfr.load_or_solve("kuhn_poker", memo=False)
    assert again.source == "solved" and again.exploitability == pytest.approx(value)
    assert json.loads(path.read_text())["exploitability"] == pytest.approx(value)


@pytest.mark.slow
def test_leduc_exploitability_reported():
    policy = cfr.load_or_solve("leduc_poker", memo=False)
    print(f"leduc: {policy.iterations} iterations in {policy.solve_seconds:.1f} s ({policy.source}), "
          f"exploitability {policy.exploitability:.5f}")
    assert math.isfinite(policy.exploitability) and 0 < policy.exploitability < 0.05  # measured ~0.012
    assert len(policy.table) == 936
    assert cfr.exploitability("leduc_poker", policy.table) == pytest.approx(policy.exploitability)


@pytest.mark.parametrize("env_id", ["kuhn_poker", pytest.param("leduc_poker", marks=pytest.mark.slow)])
def test_cfr_bot_plays_legal_complete_games(env_id):
    env = games.make(env_id if env_id == "kuhn_poker" else {"name": "openspiel", "game": env_id})
    bot, rand = bots.make("cfr", env), bots.make("random", env)
    assert bot.name == "cfr" and bot.exploitability == bot.policy.exploitability
    assert bot.iterations == cfr.CFR_ITERATIONS[env_id]
    rng = np.random.default_rng(0)
    for seed in range(30):
        for players in ([bot, rand], [rand, bot], [bot, bot]):
            state = play_out(env, players, seed, rng)
            assert state.end_reason == "game"


def test_cfr_bot_samples_the_average_policy():
    env = games.make("kuhn_poker")
    bot = bots.make("cfr", env)
    state = env.reset(0)
    info = state.native().information_state_string(0)
    probs = dict(bot.policy.table[info])
    rng = np.random.default_rng(1)
    n = 4000
    bets = sum(bot.act(state, 0, rng) == state.action_text(1, 0) for _ in range(n))
    p = probs[1]
    assert abs(bets / n - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-9
    again = [bot.act(state, 0, np.random.default_rng(5)) for _ in range(3)]
    assert again[0] == again[1] == again[2]  # all randomness from the caller's rng


def test_cfr_refuses_other_games():
    for spec in ["tic_tac_toe", {"name": "openspiel", "game": "leduc_poker(players=3)"}]:
        with pytest.raises(ValueError) as err:
            bots.make("cfr", games.make(spec))
        assert "\n" not in str(err.value) and "kuhn_poker and leduc_poker" in str(err.value)
    with pytest.raises(ValueError, match="not 'tic_tac_toe'$"):
        bots.make("cfr", games.make("tic_tac_toe"))
    with pytest.raises(ValueError, match="not 'kuhn_poker\\(players=3\\)'$"):
        cfr.check_game(pyspiel.load_game("kuhn_poker(players=3)"))


def test_served_specs_are_checked_but_not_built():
    env = games.make("kuhn_poker")
    for spec, words in [("checkpoint:runs/a/final/main", "frozen policy served by a worker"),
                        ("pool", "served by workers")]:
        bots.check_spec(spec)
        with pytest.raises(ValueError, match=words) as err:
            bots.make(spec, env)
        assert "\n" not in str(err.value) and "not an in-process bot" in str(err.value)
    bots.check_spec("cfr")
    with pytest.raises(ValueError, match="allowed: random, mcts:N"):
        bots.check_spec("checkpoint:")
