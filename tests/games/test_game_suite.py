"""The game suite: every game plays complete games with random bots on all seats, and a seat's
prompt is a function of what that seat may know only (two deals that differ in hidden cards give
the same prompt)."""
from __future__ import annotations

import numpy as np
import pytest

from mas.agents.bots import RandomBot
from mas.games import make
from mas.orchestration.rollout import EpisodeSpec, RolloutEngine

SUITE = ["tic_tac_toe", "kuhn_poker", "leduc_poker", "connect_four", "liars_dice", "nim", "hanabi_mini",
         "hanabi_simple", "race_to_21"]


@pytest.mark.parametrize("name", SUITE)
def test_complete_games_with_random_bots(name):
    env = make(name)
    bot = RandomBot()
    specs = [EpisodeSpec(episode_id=i, group_id=i, seed=i, players=[bot] * env.num_seats) for i in range(20)]
    episodes, _ = RolloutEngine(env, {}, {}).play(specs, seed=0)
    for ep in episodes:
        assert len(ep.outcomes) == env.num_seats and "invalid" not in ep.outcomes
    if name.startswith("hanabi"):  # cooperative: one score for the team
        assert all(len(set(ep.game_returns)) == 1 for ep in episodes)
    else:
        assert any(o == "win" for ep in episodes for o in ep.outcomes)


def _first_seeds(env, key, limit=4000):
    """Two seeds whose deals agree on key(state)[0] (what the seat may know) and differ on
    key(state)[1] (what it may not)."""
    seen = {}
    for seed in range(limit):
        known, hidden = key(env.reset(seed).native())
        for other_seed, other_hidden in seen.get(known, []):
            if other_hidden != hidden:
                return other_seed, seed
        seen.setdefault(known, []).append((seed, hidden))
    raise AssertionError("no pair of deals found")


def _play(env, seed, moves):
    state = env.reset(seed)
    for move in moves:
        state.apply(state.current_seats()[0], move)
    return state


@pytest.mark.parametrize("name, moves", [
    ("kuhn_poker", ["<PASS>", "<BET>"]),  # seat 0 acts again after these
    ("liars_dice", ["<BID1-3>", "<BID2-3>"]),
])
def test_the_other_players_card_or_dice_is_not_in_the_prompt(name, moves):
    env = make(name)
    # two deals: the same card (die) for seat 0, a different one for seat 1
    a, b = _first_seeds(env, lambda s: (s.history()[0], s.history()[1]))
    assert env.reset(a).messages(0) == env.reset(b).messages(0)
    sa, sb = _play(env, a, moves), _play(env, b, moves)
    assert sa.current_seats() == [0] and sa.messages(0) == sb.messages(0)
    assert sa.native().information_state_string(1) != sb.native().information_state_string(1)


def test_leduc_prompt_holds_own_card_and_board_only():
    env = make("leduc_poker")
    # same own card (seat 0) and, after round 1, the same board card; different opponent card
    a, b = _first_seeds(env, lambda s: (s.history()[0], s.history()[1]))
    round1 = ["<CALL>", "<CALL>"]
    sa, sb = _play(env, a, round1), _play(env, b, round1)
    if sa.native().history()[2] == sb.native().history()[2]:  # same board card: prompts must match
        assert sa.messages(0) == sb.messages(0)
    assert env.reset(a).messages(0) == env.reset(b).messages(0)
    text = env.reset(a).messages(0)[-1]["content"]
    assert "Your card:" in text and "Board card: none yet" in text and "Private" not in text


def test_hanabi_prompt_does_not_show_ones_own_hand():
    env = make("hanabi_mini")
    hand = 3

    def key(native):
        deal = native.history()  # chance deals: seat 0's cards, then seat 1's
        return tuple(deal[hand:2 * hand]), tuple(deal[:hand])  # known: partner's hand; hidden: own

    a, b = _first_seeds(env, key)
    sa, sb = env.reset(a), env.reset(b)
    assert sa.native().history()[:hand] != sb.native().history()[:hand]
    assert sa.messages(0) == sb.messages(0)  # seat 0 cannot tell its own hands apart
    assert sa.native().observation_string(1) != sb.native().observation_string(1)  # seat 1 sees them


def test_games_it_cannot_play_are_refused_clearly():
    with pytest.raises(ValueError, match="cannot load game 'no_such_game'"):
        make({"name": "openspiel", "game": "no_such_game"})
    with pytest.raises(ValueError, match="neither sequential nor simultaneous"):
        make({"name": "openspiel", "game": "mfg_crowd_modelling"})
    with pytest.raises(ValueError, match="cannot load game 'tic_tac_toe' with params"):
        make({"name": "openspiel", "game": "tic_tac_toe", "params": {"rows": 4}})


def test_game_parameters_reach_openspiel():
    env = make({"name": "openspiel", "game": "nim", "params": {"pile_sizes": "2;2"}})
    assert "Piles: 1:2 2:2" in env.reset(0).messages(0)[-1]["content"]
    assert np.isclose(make("hanabi_simple").game.get_parameters()["hand_size"], 5)
