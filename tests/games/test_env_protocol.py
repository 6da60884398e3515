"""The env base classes: the registry refuses what does not inherit them, explicit chance events
enumerate a game's deals with their probabilities, and a cloned state plays on independently."""
from __future__ import annotations

import pytest

from mas.games import Env, EnvState, make, register_env
from mas.games.base import _ENV_FACTORIES


def test_an_env_that_does_not_inherit_env_is_refused_in_one_line():
    class Loose:  # has the methods, not the base class
        id, num_seats = "loose", 2

        def reset(self, seed):
            return None

    with pytest.raises(TypeError, match="does not inherit mas.games.Env"):
        register_env("loose_class")(Loose)
    register_env("loose_factory")(lambda **_: Loose())
    try:
        with pytest.raises(TypeError, match="env 'loose_factory': its factory returned a Loose"):
            make("loose_factory")
    finally:
        _ENV_FACTORIES.pop("loose_factory")


def test_every_registered_env_inherits_the_base_classes():
    for spec in ("tic_tac_toe", "kuhn_poker", "race_to_21", {"name": "workflow", "workflow": {"type": "loop", "agents": ["s", "v"]}},
                 {"name": "adversarial", "attackers": ["a"], "defenders": ["d"]}):
        env = make(spec)
        assert isinstance(env, Env) and isinstance(env.reset(3), EnvState)


def _deal_probabilities(env) -> dict[tuple, float]:
    """Walk the chance events before the first decision: every deal with its probability."""
    out = {}

    def walk(state, path, p):
        outcomes = state.chance_outcomes()
        if not outcomes:
            out[tuple(path)] = p
            return
        for outcome, q in outcomes:
            child = state.clone()
            child.apply_chance(outcome)
            walk(child, path + [outcome], p * q)

    walk(env.reset_explicit_chance(), [], 1.0)
    return out


def test_kuhn_deals_are_enumerated_with_their_probabilities():
    deals = _deal_probabilities(make("kuhn_poker"))
    assert len(deals) == 6  # 3 cards, 2 players, ordered
    assert sum(deals.values()) == pytest.approx(1.0)
    assert all(p == pytest.approx(1 / 6) for p in deals.values())


def test_a_state_waiting_on_chance_has_no_seat_to_act_and_continues_after_it():
    state = make("kuhn_poker").reset_explicit_chance()
    assert state.current_seats() == [] and not state.is_terminal()
    while state.chance_outcomes():
        state.apply_chance(state.chance_outcomes()[0][0])
    assert state.current_seats() == [0]
    assert state.messages(0)[-1]["role"] == "user"


def test_leduc_stops_again_at_the_public_card():
    state = make("leduc_poker").reset_explicit_chance()
    while state.chance_outcomes():
        state.apply_chance(state.chance_outcomes()[0][0])
    for _ in range(2):  # both players check: the round ends, the public card is a chance event
        seat = state.current_seats()[0]
        check = [a for a in state.legal_actions(seat) if "CALL" in a.upper() or "CHECK" in a.upper()][0]
        state.apply(seat, check)
    outcomes = state.chance_outcomes()
    assert outcomes and sum(p for _, p in outcomes) == pytest.approx(1.0)


def test_a_clone_plays_on_without_changing_the_original():
    for spec in ("tic_tac_toe", "race_to_21", {"name": "workflow", "workflow": {"type": "loop", "agents": ["s", "v"]}}):
        state = make(spec).reset(5)
        seat = state.current_seats()[0]
        before = (state.messages(seat), state.returns(), state.legal_actions(seat))
        twin = state.clone()
        legal = twin.legal_actions(seat)
        twin.apply(seat, legal[0] if legal else "<answer>3</answer>")
        assert (state.messages(seat), state.returns(), state.legal_actions(seat)) == before
        assert twin.messages(seat) != before[0]


def test_reset_draws_chance_itself_and_envs_without_enumeration_say_so():
    assert make("kuhn_poker").reset(0).chance_outcomes() == []
    with pytest.raises(ValueError, match="cannot enumerate"):
        make({"name": "workflow", "workflow": {"type": "loop", "agents": ["s", "v"]}}).reset_explicit_chance()


def test_a_custom_game_enumerates_its_start_states():
    state = make("race_to_21").reset_explicit_chance()
    assert state.current_seats() == [] and state.chance_outcomes() == [(0, 0.25), (1, 0.25), (2, 0.25), (3, 0.25)]
    state.apply_chance(2)
    assert state.current_seats() == [0] and "Total: 2." in state.messages(0)[-1]["content"]
    assert make("race_to_21").reset(0).chance_outcomes() == []
