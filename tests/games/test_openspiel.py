import numpy as np
import pytest

import mas.games as games
from mas.games import parse_action
from mas.games.renderers.cards import KuhnRenderer

TTT_LEGAL = [f"<X({r},{c})>" for r in range(3) for c in range(3)]


def play(state, moves):
    """Apply moves in turn order; return the last StepResult."""
    result = None
    for text in moves:
        (seat,) = state.current_seats()
        result = state.apply(seat, text)
    return result


# ---------------------------------------------------------------------------------------------
# registry


def test_registry_names_and_unknown():
    assert {"openspiel", "tic_tac_toe", "kuhn_poker"} <= set(games.available_envs())
    with pytest.raises(ValueError) as e:
        games.make("xyz")
    msg = str(e.value)
    assert "\n" not in msg and "unknown env 'xyz'" in msg and "tic_tac_toe" in msg
    with pytest.raises(ValueError, match="foo"):
        games.make({"name": "tic_tac_toe", "foo": 1})
    with pytest.raises(ValueError, match="unknown mode"):
        games.make({"name": "tic_tac_toe", "rewards": "shaped"})


def test_make_ids_and_generic_games():
    assert games.make("tic_tac_toe").id == "tic_tac_toe"
    env = games.make({"name": "openspiel", "game": "kuhn_poker"})
    assert env.id == "kuhn_poker" and env.num_seats == 2
    assert games.make({"name": "openspiel", "game": "tic_tac_toe", "id": "ttt"}).id == "ttt"
    # a game without a hand-written renderer shows the seat's own observation string
    breakthrough = games.make({"name": "openspiel", "game": "breakthrough", "params": {"rows": 6, "columns": 6}})
    state = breakthrough.reset(3)
    user = state.messages(0)[-1]["content"]
    assert state.native().observation_string(0).strip() in user and user.startswith("Legal actions: <")


# ---------------------------------------------------------------------------------------------
# parsing


def test_parse_action_forms():
    assert parse_action("<answer><X(1,2)></answer>", TTT_LEGAL) == "<X(1,2)>"
    assert parse_action("<X(1,2)>", TTT_LEGAL) == "<X(1,2)>"
    assert parse_action("  x(1, 2) ", TTT_LEGAL) == "<X(1,2)>"
    assert parse_action("<answer> X( 1 ,2 ) </answer>", TTT_LEGAL) == "<X(1,2)>"
    assert parse_action("<answer><X(0,0)></answer> no: <answer><x(2,2)></answer>", TTT_LEGAL) == "<X(2,2)>"
    assert parse_action("<think>maybe <answer><X(0,0)></answer></think><answer><X(1,1)></answer>", TTT_LEGAL) == "<X(1,1)>"
    assert parse_action("<think><answer><X(0,0)></answer></think>", TTT_LEGAL) is None
    assert parse_action("I play <X(1,2)>", TTT_LEGAL) is None
    assert parse_action("<O(1,2)>", TTT_LEGAL) is None
    assert parse_action("hello", TTT_LEGAL) is None
    assert parse_action("", TTT_LEGAL) is None
    assert parse_action("<answer>bet</answer>", ["<PASS>", "<BET>"]) == "<BET>"


# ---------------------------------------------------------------------------------------------
# tic-tac-toe


def test_ttt_first_turn_and_known_position():
    state = games.make("tic_tac_toe").reset(0)
    assert state.current_seats() == [0]
    assert state.legal_actions(0) == TTT_LEGAL
    assert state.legal_actions(1) == []
    system, user = state.messages(0)
    assert system["role"] == "system" and "You are player 0 and play X." in system["content"]
    assert "<answer>ACTION</answer>" in system["content"]
    assert user == {"role": "user", "content": "Legal actions: " + " ".join(TTT_LEGAL) + "\nBoard:\n. . .\n. . .\n. . .\nMoves so far: none"}
    play(state, ["<X(1,1)>", "<O(0,2)>", "<answer>x(0,0)</answer>"])
    msgs = state.messages(1)
    assert "You are player 1 and play O." in msgs[0]["content"]
    assert msgs[-1]["content"] == (
        "Opponent played <X(0,0)>.\n"
        "Legal actions: <O(0,1)> <O(1,0)> <O(1,2)> <O(2,0)> <O(2,1)> <O(2,2)>\n"
        "Board:\n"
        "X . O\n"
        ". X .\n"
        ". . .\n"
        "Moves so far: <x(1,1)> <o(0,2)> <x(0,0)>"
    )
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[2]["content"] == "<O(0,2)>"


def test_ttt_compact_prompt_without_history_is_the_position_alone():
    """Two move orders reaching one position give the same prompt: no report of the last move,
    the marks listed by cell. Kept by the compact prompt with history only in move order."""
    env = games.make({"name": "tic_tac_toe", "prompt": "compact", "history": False})
    a, b = env.reset(0), env.reset(1)
    play(a, ["<X(1,1)>", "<O(0,2)>", "<X(0,0)>", "<O(2,2)>"])
    play(b, ["<X(0,0)>", "<O(2,2)>", "<X(1,1)>", "<O(0,2)>"])
    assert a.messages(0) == b.messages(0)
    assert a.messages(0)[-1]["content"] == (
        "Legal actions: <X(0,1)> <X(1,0)> <X(1,2)> <X(2,0)> <X(2,1)>\n"
        "Board:\nX . O\n. X .\n. . O\n"
        "Marks: <x(0,0)> <o(0,2)> <x(1,1)> <o(2,2)>"
    )
    chat = games.make({"name": "tic_tac_toe", "prompt": "compact", "history": True}).reset(0)
    play(chat, ["<X(1,1)>", "<O(0,2)>"])
    assert chat.messages(0)[-1]["content"].startswith("Opponent played <O(0,2)>.")
    assert chat.messages(0)[-1]["content"].endswith("Moves so far: <x(1,1)> <o(0,2)>")


def test_ttt_messages_extend():
    state = games.make("tic_tac_toe").reset(0)
    seen = {0: [], 1: []}  # each seat's messages at each of its turns, and its answer
    answers = ["<answer><X(0,0)></answer>", "O(1,1)", "<think>hm</think><answer><X(2,2)></answer>", "<O(0,1)>", "x(1,0)"]
    for text in answers:
        (seat,) = state.current_seats()
        msgs = state.messages(seat)
        assert msgs[-1]["role"] == "user"
        seen[seat].append((msgs, text))
        state.apply(seat, text)
    for seat, turns in seen.items():
        for (prev, answer), (nxt, _) in zip(turns, turns[1:]):
            assert nxt[: len(prev) + 1] == prev + [{"role": "assistant", "content": answer}]
            assert len(nxt) == len(prev) + 2
    assert len(seen[0]) == 3 and len(seen[1]) == 2


def test_ttt_format_reward_and_win():
    state = games.make("tic_tac_toe").reset(0)
    r = state.apply(0, "<X(0,0)>")
    assert r.valid and r.action == "<X(0,0)>" and not r.terminal
    assert r.rewards[0] == pytest.approx(0.05) and r.rewards.get(1, 0.0) == 0.0
    last = play(state, ["<O(1,0)>", "<X(0,1)>", "<O(1,1)>", "<X(0,2)>"])
    assert last.terminal and state.is_terminal() and state.current_seats() == []
    assert last.rewards[0] == pytest.approx(1.05) and last.rewards[1] == pytest.approx(-1.0)
    assert state.returns() == pytest.approx([1.15, -0.9])
    assert state.game_returns() == pytest.approx([1.0, -1.0])
    assert state.outcomes() == ["win", "loss"]
    with pytest.raises(ValueError):
        state.apply(1, "<O(2,2)>")


def test_ttt_draw_pays_draw_reward():
    state = games.make("tic_tac_toe").reset(0)
    cells = [(0, 0), (1, 1), (2, 2), (0, 1), (2, 1), (2, 0), (0, 2), (1, 2), (1, 0)]
    moves = [f"<{'XO'[i % 2]}({r},{c})>" for i, (r, c) in enumerate(cells)]
    last = play(state, moves)
    assert last.terminal and state.outcomes() == ["draw", "draw"]
    assert last.rewards[0] == pytest.approx(0.05 + 0.1) and last.rewards[1] == pytest.approx(0.1)
    assert state.returns() == pytest.approx([5 * 0.05 + 0.1, 4 * 0.05 + 0.1])
    assert state.game_returns() == [0.0, 0.0]


def test_ttt_invalid_ends_game():
    state = games.make("tic_tac_toe").reset(0)
    state.apply(0, "<X(1,1)>")
    r = state.apply(1, "<O(1,1)>")  # occupied: illegal
    assert not r.valid and r.action is None and r.terminal
    assert r.rewards[1] == pytest.approx(-11.0) and r.rewards.get(0, 0.0) == 0.0
    assert state.returns() == pytest.approx([0.05, -11.0])
    assert state.outcomes() == ["win", "invalid"]
    assert state.game_returns() == [0.0, 0.0]

    forced = games.make("tic_tac_toe").reset(0)
    r = forced.apply_invalid(0, "truncated")
    assert r.terminal and forced.returns() == pytest.approx([-11.0, 0.0])


def test_ttt_raw_rewards_and_overrides():
    state = games.make({"name": "tic_tac_toe", "rewards": "raw"}).reset(0)
    r = state.apply(0, "<X(0,0)>")
    assert r.rewards.get(0, 0.0) == 0.0
    play(state, ["<O(1,0)>", "<X(0,1)>", "<O(1,1)>", "<X(0,2)>"])
    assert state.returns() == [1.0, -1.0]
    bad = games.make({"name": "tic_tac_toe", "rewards": "raw"}).reset(0)
    bad.apply(0, "nonsense")
    assert bad.returns() == [-1.0, 0.0]
    custom = games.make({"name": "tic_tac_toe", "rewards": {"mode": "mars", "format_reward": 0.5, "invalid_penalty": 2}})
    s = custom.reset(0)
    assert s.apply(0, "<X(0,0)>").rewards[0] == 0.5
    s.apply(1, "zzz")
    assert s.returns() == pytest.approx([0.5, -3.0])


def test_ttt_max_turns_is_a_draw():
    state = games.make({"name": "tic_tac_toe", "max_turns": 3}).reset(0)
    last = play(state, ["<X(0,0)>", "<O(1,1)>", "<X(2,2)>"])
    assert last.terminal and state.outcomes() == ["draw", "draw"]
    assert state.returns() == pytest.approx([0.2, 0.15])


# ---------------------------------------------------------------------------------------------
# Kuhn poker

CARDS = "JQK"


def deal(state):
    return tuple(state.native().history()[:2])


def test_kuhn_deal_is_seeded():
    env = games.make("kuhn_poker")
    for seed in range(5):
        assert deal(env.reset(seed)) == deal(env.reset(seed))
    deals = {deal(env.reset(seed)) for seed in range(30)}
    assert len(deals) >= 5  # 6 possible deals


def test_kuhn_first_turn_and_actions():
    env = games.make("kuhn_poker")
    state = env.reset(0)
    c0, c1 = deal(state)
    assert state.legal_actions(0) == ["<PASS>", "<BET>"]
    assert state.messages(0)[-1]["content"] == (
        f"Legal actions: <PASS> <BET>\nYour card: {CARDS[c0]}\nPot: 2 (you 1, opponent 1)"
    )
    state.apply(0, "<answer>BET</answer>")
    assert state.messages(1)[-1]["content"] == (
        f"Opponent played <BET>.\nLegal actions: <PASS> <BET>\nYour card: {CARDS[c1]}\nPot: 3 (you 1, opponent 2)"
    )
    assert KuhnRenderer.committed(state.native(), 1) == [2.0, 1.0]


def _visible_cards(messages):
    text = "\n".join(m["content"] for m in messages if m["role"] == "user")
    return {ch for ch in text if ch in CARDS}, [ln for ln in text.splitlines() if ln.startswith("Your card:")]


def test_kuhn_never_shows_other_card():
    env = games.make("kuhn_poker")
    rng = np.random.default_rng(0)
    for seed in range(150):
        state = env.reset(seed)
        cards = deal(state)
        snapshots = []
        while not state.is_terminal():
            (seat,) = state.current_seats()
            snapshots += [(s, state.messages(s)) for s in (0, 1)]
            legal = state.legal_actions(seat)
            state.apply(seat, legal[rng.integers(len(legal))])
        snapshots += [(s, state.messages(s)) for s in (0, 1)]
        for seat, msgs in snapshots:
            letters, lines = _visible_cards(msgs)
            own = CARDS[cards[seat]]
            assert letters <= {own}, (seed, seat, msgs)
            assert all(line == f"Your card: {own}" for line in lines)


@pytest.mark.parametrize(
    "moves,winner_gets",
    [(["<PASS>", "<PASS>"], 1.0), (["<BET>", "<BET>"], 2.0), (["<PASS>", "<BET>", "<BET>"], 2.0)],
)
def test_kuhn_showdown_payoffs(moves, winner_gets):
    state = games.make("kuhn_poker").reset(0)
    c0, c1 = deal(state)
    play(state, moves)
    sign = 1.0 if c0 > c1 else -1.0
    assert state.game_returns() == [sign * winner_gets, -sign * winner_gets]
    fmt = [0.05 * len(moves[0::2]), 0.05 * len(moves[1::2])]
    assert state.returns() == pytest.approx([sign * winner_gets + fmt[0], -sign * winner_gets + fmt[1]])
    assert state.outcomes() == (["win", "loss"] if sign > 0 else ["loss", "win"])


def test_kuhn_fold():
    state = games.make("kuhn_poker").reset(1)
    last = play(state, ["<PASS>", "<BET>", "<PASS>"])
    assert last.terminal and state.game_returns() == [-1.0, 1.0]
    assert state.outcomes() == ["loss", "win"]


def test_kuhn_invalid_stake_is_committed_chips():
    state = games.make("kuhn_poker").reset(0)
    state.apply(0, "<BET>")
    r = state.apply(1, "<RAISE>")
    assert r.terminal and r.rewards[1] == pytest.approx(-1.0 - 10.0) and r.rewards[0] == 0.0
    assert state.outcomes() == ["win", "invalid"]


def test_leduc_invalid_stake_is_committed_chips():
    state = games.make({"name": "openspiel", "game": "leduc_poker"}).reset(0)
    state.apply(0, "<Raise>")  # ante 1 + raise 2
    state.apply(1, "<Raise>")  # ante 1 + call 2 + raise 2
    r = state.apply_invalid(0, "truncated")
    assert r.rewards[0] == pytest.approx(-3.0 - 10.0)
    assert state.outcomes() == ["invalid", "win"]


def test_simultaneous_game():
    state = games.make({"name": "openspiel", "game": "matrix_rps"}).reset(0)
    assert state.current_seats() == [0, 1]
    r = state.apply(1, "<Paper>")
    assert not r.terminal and state.current_seats() == [0]
    r = state.apply(0, "rock")
    assert r.terminal and state.game_returns() == [-1.0, 1.0]
    assert state.outcomes() == ["loss", "win"]
