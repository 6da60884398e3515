import numpy as np
import pytest

import mas.games as games
from mas.agents import bots
from helpers import play_out



def test_make_specs():
    env = games.make("tic_tac_toe")
    assert bots.make("random", env).name == "random"
    assert bots.make("mcts:50", env).name == "mcts:50"
    for bad in ["greedy", "mcts", "mcts:0", "mcts:x"]:
        with pytest.raises(ValueError) as e:
            bots.make(bad, env)
        assert "\n" not in str(e.value) and "random" in str(e.value) and "mcts:N" in str(e.value)


def test_random_legal_and_reproducible():
    env = games.make("tic_tac_toe")
    bot = bots.make("random", env)
    runs = []
    for _ in range(2):
        rng = np.random.default_rng(7)
        state = play_out(env, [bot, bot], 0, rng)
        runs.append([m["content"] for m in state.messages(0) if m["role"] == "assistant"])
    assert runs[0] == runs[1]
    other = play_out(env, [bot, bot], 0, np.random.default_rng(8))
    assert [m["content"] for m in other.messages(0) if m["role"] == "assistant"] != runs[0]


def test_mcts_beats_random_as_x():
    env = games.make("tic_tac_toe")
    mcts, rand = bots.make("mcts:100", env), bots.make("random", env)
    rng = np.random.default_rng(0)
    outcomes = [play_out(env, [mcts, rand], g, rng).outcomes()[0] for g in range(20)]
    assert outcomes.count("loss") <= 2
    assert outcomes.count("win") >= 14


def test_mcts_takes_immediate_win():
    env = games.make("tic_tac_toe")
    bot = bots.make("mcts:100", env)
    for seed in range(5):
        state = env.reset(0)
        for move in ["<X(0,0)>", "<O(1,0)>", "<X(0,1)>", "<O(1,1)>"]:
            state.apply(state.current_seats()[0], move)
        assert bot.act(state, 0, np.random.default_rng(seed)) == "<X(0,2)>"


def test_mcts_reproducible_and_kuhn():
    env = games.make("tic_tac_toe")
    bot = bots.make("mcts:20", env)
    state = env.reset(0)
    a = [bot.act(state, 0, np.random.default_rng(3)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    kuhn = games.make("kuhn_poker")
    kbot = bots.make("mcts:20", kuhn)
    rng = np.random.default_rng(1)
    for seed in range(5):
        play_out(kuhn, [kbot, kbot], seed, rng)  # determinized: never needs the hidden card


def test_check_spec():
    bots.check_spec("random")
    bots.check_spec("mcts:10")
    with pytest.raises(ValueError, match="allowed: random, mcts:N"):
        bots.check_spec("alphazero")
