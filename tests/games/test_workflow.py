"""Workflow envs (chain, loop, debate, router): who acts when, what each seat sees, the team reward,
invalid outputs, and chats that extend turn by turn."""
from __future__ import annotations

import pytest

from mas.games import make


def _env(type_, history=True, **workflow):
    return make({"name": "workflow", "workflow": {"type": type_, **workflow},
                 "task": {"name": "arithmetic", "max_value": 10}, "history": history})


def _right(state) -> str:
    return f"\\boxed{{{state.problem.answer}}}"


def _wrong(state) -> str:
    return f"\\boxed{{{(state.problem.answer + 1) % 11}}}"


def test_loop_approve_first_round_pays_the_team():
    env = _env("loop", agents=["solver", "verifier"], max_rounds=2)
    s = env.reset(1)
    assert env.seat_names == ["solver", "verifier"] and s.current_seats() == [0]
    assert s.legal_actions(0) == [str(n) for n in range(11)]
    assert s.legal_actions(1) == ["approve", "reject"]
    assert s.answer_template(1).format(action="approve") == "<verify>approve</verify>"
    assert s.apply(0, "thinking... " + _right(s)).rewards == {}
    assert s.current_seats() == [1]
    assert "solver answered: thinking..." in s.messages(1)[-1]["content"]
    r = s.apply(1, "<verify>approve</verify>")
    assert r.terminal and r.rewards == {0: 1.0, 1: 1.0}
    assert s.returns() == [1.0, 1.0] and s.outcomes() == ["win", "win"] and s.game_returns() == [1.0, 1.0]


def test_loop_reject_then_last_round_ends_with_the_solvers_last_answer():
    env = _env("loop", agents=["solver", "verifier"], max_rounds=2)
    s = env.reset(2)
    s.apply(0, _right(s))
    s.apply(1, "<verify>reject</verify>")  # a wrong rejection: the solver must answer again
    assert s.current_seats() == [0]
    assert "rejected" in s.messages(0)[-1]["content"]
    s.apply(0, _wrong(s))
    r = s.apply(1, "<verify>reject</verify>")
    assert r.terminal and s.final == (s.problem.answer + 1) % 11
    assert s.returns() == [0.0, 0.0] and s.outcomes() == ["loss", "loss"]


def test_invalid_outputs_cost_their_author_and_the_workflow_goes_on():
    env = _env("loop", agents=["solver", "verifier"], max_rounds=2)
    s = env.reset(3)
    r = s.apply(0, "no idea")
    assert not r.valid and r.rewards == {0: -0.1}
    r = s.apply(1, "hmm")  # unreadable verdict = reject
    assert not r.valid and r.rewards == {1: -0.1} and s.current_seats() == [0]
    s.apply(0, _right(s))
    r = s.apply(1, "approve")  # bare verdicts are read too
    assert r.valid and r.terminal
    assert s.returns() == pytest.approx([0.9, 0.9])


def test_chat_extends_turn_by_turn_with_history_and_restarts_without():
    for history in (True, False):
        env = _env("loop", history=history, agents=["solver", "verifier"], max_rounds=3)
        s = env.reset(4)
        first = s.messages(0)
        assert s.messages(0) == first  # asking twice in one turn changes nothing
        s.apply(0, _wrong(s))
        s.apply(1, "<verify>reject</verify>")
        second = s.messages(0)
        if history:
            assert second[: len(first)] == first
            assert second[len(first)] == {"role": "assistant", "content": _wrong(s)}
        else:
            assert len(second) == 2 and second[0] == first[0] and "rejected" in second[1]["content"]


def test_chain_each_agent_sees_earlier_answers_last_answer_counts():
    env = _env("chain", agents=["a", "b", "c"])
    s = env.reset(5)
    s.apply(0, _wrong(s))
    s.apply(1, _wrong(s))
    assert [m for m in s.messages(2)[-1]["content"].splitlines() if "answered" in m] == [
        f"a answered: {_wrong(s)}", f"b answered: {_wrong(s)}"]
    r = s.apply(2, _right(s))
    assert r.terminal and s.outcomes() == ["win"] * 3


def test_debate_rounds_are_simultaneous_then_the_aggregator_answers():
    env = _env("debate", agents=["a", "b"], aggregator="judge", max_rounds=2)
    assert env.seat_names == ["a", "b", "judge"]
    s = env.reset(6)
    assert s.current_seats() == [0, 1]
    s.messages(0), s.messages(1)
    s.apply(0, _right(s))
    assert s.current_seats() == [1]
    s.apply(1, _wrong(s))
    assert s.current_seats() == [0, 1]
    assert f"b answered: {_wrong(s)}" in s.messages(0)[-1]["content"]
    assert "a answered" not in s.messages(0)[-1]["content"]
    s.apply(0, _right(s))
    s.apply(1, _right(s))
    assert s.current_seats() == [2]
    r = s.apply(2, _wrong(s))
    assert r.terminal and s.outcomes() == ["loss"] * 3


def test_debate_without_aggregator_takes_the_majority():
    env = _env("debate", agents=["a", "b", "c"], max_rounds=1)
    s = env.reset(7)
    s.apply(0, _right(s))
    s.apply(1, _wrong(s))
    s.apply(2, _right(s))
    assert s.is_terminal() and s.final == s.problem.answer and s.returns() == [1.0] * 3


def test_router_routes_by_tag_and_stops_on_done():
    env = _env("router", agents=["fast", "careful"], router="boss", max_rounds=3)
    assert env.seat_names == ["boss", "fast", "careful"]
    s = env.reset(8)
    assert s.legal_actions(0) == ["fast", "careful"]  # `done` only once someone has answered
    s.apply(0, "<route>careful</route>")
    assert s.current_seats() == [2]
    s.apply(2, _right(s))
    assert s.legal_actions(0) == ["fast", "careful", "done"]
    s.apply(0, "<route>done</route>")
    assert s.is_terminal() and s.correct()


def test_router_invalid_route_ends_the_episode():
    env = _env("router", agents=["fast"], router="boss")
    s = env.reset(9)
    r = s.apply(0, "<route>nobody</route>")
    assert not r.valid and r.terminal and s.final is None and s.returns() == [-0.1, 0.0]


@pytest.mark.parametrize("workflow, message", [
    ({"type": "loop", "agents": ["a"]}, "exactly 2"),
    ({"type": "debate", "agents": ["a"]}, "at least 2"),
    ({"type": "router", "agents": ["a"]}, "workflow.router"),
    ({"type": "chain", "agents": ["a", "b"], "aggregator": "c"}, "'debate' only"),
    ({"type": "chain", "agents": ["a", "a"]}, "distinct"),
    ({"type": "spiral", "agents": ["a"]}, "allowed: chain, debate, loop, router"),
])
def test_bad_shapes_are_refused(workflow, message):
    with pytest.raises(ValueError, match=message):
        make({"name": "workflow", "workflow": workflow})
