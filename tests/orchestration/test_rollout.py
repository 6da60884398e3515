"""The rollout engine with a real tiny model in-process: prompts extend, rewards land on the right turns."""
from __future__ import annotations

import pytest

from mas.agents import bots
from mas.agents.agent import Agent
from mas.agents.backends.base import SamplingParams
from mas.agents.models import load_tokenizer
from mas.games import make
from mas.orchestration.handles import LocalHandle
from mas.orchestration.rollout import EpisodeSpec, RolloutEngine
from mas.orchestration.workers import PolicyWorker, WorkerSpec


@pytest.fixture(scope="module")
def worker(tiny_path):
    return PolicyWorker(WorkerSpec(policy="main", model_path=tiny_path, trainable=False))


def _engine(env, worker, tiny_path):
    return RolloutEngine(env, {"main": LocalHandle(worker)}, {"main": load_tokenizer(tiny_path)})


AGENT = Agent(name="player", policy="main", sampling=SamplingParams(temperature=1.0, max_new_tokens=8), constrained=True)


def test_self_play_prompts_extend_and_rewards_sum_to_returns(worker, tiny_path):
    env = make("tic_tac_toe")
    engine = _engine(env, worker, tiny_path)
    specs = [EpisodeSpec(episode_id=i, group_id=i, seed=i, players=[AGENT, AGENT]) for i in range(6)]
    episodes, stats = engine.play(specs, seed=0)
    assert stats.generate_calls == stats.rounds  # one batched call per round for the one policy
    for ep in episodes:
        assert all(t.valid for t in ep.turns)  # constrained decoding never makes an illegal move
        for seat in (0, 1):
            turns = [t for t in ep.turns if t.seat == seat]
            assert [t.turn for t in turns] == list(range(len(turns)))
            for prev, nxt in zip(turns, turns[1:]):
                assert nxt.prompt_ids[: len(prev.prompt_ids) + len(prev.response_ids)] == prev.prompt_ids + prev.response_ids
            assert sum(t.reward for t in turns) == pytest.approx(ep.returns[seat])
        assert [t.step for t in ep.turns] == list(range(len(ep.turns)))


def test_opponent_win_penalizes_my_latest_turn(worker, tiny_path):
    env = make("tic_tac_toe")
    engine = _engine(env, worker, tiny_path)
    mcts = bots.make("mcts:200", env)
    specs = [EpisodeSpec(episode_id=i, group_id=i, seed=i, players=[mcts, AGENT]) for i in range(8)]
    episodes, _ = engine.play(specs, seed=1)
    lost = [ep for ep in episodes if ep.outcomes[1] == "loss"]
    assert lost, "MCTS should beat an untrained model at least once in 8 games"
    for ep in lost:
        last = ep.turns[-1]
        assert last.seat == 1 and last.reward == pytest.approx(0.05 - 1.0)  # its own format reward, then the loss
        assert all(t.reward == pytest.approx(0.05) for t in ep.turns[:-1])


def test_fresh_chat_per_turn_without_history(worker, tiny_path):
    env = make({"name": "tic_tac_toe", "history": False, "prompt": "compact"})
    engine = _engine(env, worker, tiny_path)
    episodes, _ = engine.play([EpisodeSpec(0, 0, 0, [AGENT, AGENT])], seed=0)
    turns = [t for t in episodes[0].turns if t.seat == 0]
    assert len(turns) >= 2
    # every prompt is short and self-contained: it does not extend the previous one
    assert turns[1].prompt_ids[: len(turns[0].prompt_ids)] != turns[0].prompt_ids
    assert max(len(t.prompt_ids) for t in turns) < 100


def test_kuhn_chance_is_seeded_in_rollouts(worker, tiny_path):
    env = make("kuhn_poker")
    engine = _engine(env, worker, tiny_path)
    specs = [EpisodeSpec(i, i, 100 + i, [AGENT, AGENT]) for i in range(4)]
    a, _ = engine.play(specs, seed=5)
    b, _ = engine.play(specs, seed=5)
    assert [t.text for ep in a for t in ep.turns] == [t.text for ep in b for t in ep.turns]
    assert [ep.returns for ep in a] == [ep.returns for ep in b]


def test_turns_carry_the_state_they_acted_from(worker, tiny_path):
    """obs_key: equal for the same position (every game opens on the empty board), different after."""
    engine = _engine(make("tic_tac_toe"), worker, tiny_path)
    specs = [EpisodeSpec(episode_id=i, group_id=0, seed=i, players=[AGENT, AGENT]) for i in range(4)]
    episodes, _ = engine.play(specs, seed=0)
    openings = {ep.turns[0].obs_key for ep in episodes}
    assert len(openings) == 1 and len(next(iter(openings))) == 16
    assert all(t.obs_key != ep.turns[0].obs_key for ep in episodes for t in ep.turns[1:])


def test_turns_carry_reward_shares_outcome_and_task(worker, tiny_path):
    """GDPO's reward__ columns add up to the reward; COPO's outcome_key and SPO's task are filled."""
    import torch

    from mas.records import TurnBatch

    engine = _engine(make("tic_tac_toe"), worker, tiny_path)  # mars rewards: a format share
    specs = [EpisodeSpec(episode_id=i, group_id=0, seed=100 + i, players=[AGENT, AGENT]) for i in range(6)]
    episodes, _ = engine.play(specs, seed=0)
    batch = TurnBatch.from_turns([t for ep in episodes for t in ep.turns])
    shares = [c for c in batch.columns if c.startswith("reward__")]
    assert "reward__outcome" in shares and "reward__format" in shares
    total = sum(getattr(batch, c) for c in shares)
    torch.testing.assert_close(total, batch.reward)
    for ep in episodes:
        for t in ep.turns:
            assert t.outcome_key == ep.outcomes[t.seat] and t.task == str(ep.seed)


def test_random_openings_are_shared_by_a_group_and_not_trained_on(worker, tiny_path):
    """Two random moves before the agents act: X moves first again, on a board with one X and one
    O; the two episodes of a group (one seed) start from the same position, other seeds from others."""
    env = make({"name": "tic_tac_toe", "history": False, "prompt": "compact"})
    engine = _engine(env, worker, tiny_path)
    specs = [EpisodeSpec(episode_id=i, group_id=i // 2, seed=i // 2, players=[AGENT, AGENT], opening_moves=2)
             for i in range(8)]
    episodes, _ = engine.play(specs, seed=0)
    plain, _ = engine.play([EpisodeSpec(0, 0, 0, [AGENT, AGENT])], seed=0)
    tok = load_tokenizer(tiny_path)
    assert tok.decode(plain[0].turns[0].prompt_ids).count("<X(") == 9  # the empty board: 9 legal moves
    for ep in episodes:
        first = ep.turns[0]
        assert first.seat == 0 and len(ep.turns) <= 7  # nobody's turns: the two opening moves
        assert tok.decode(first.prompt_ids).count("<X(") == 7
    starts = [ep.turns[0].obs_key for ep in episodes]
    assert starts[0::2] == starts[1::2]  # a group shares its opening
    assert len(set(starts)) > 1
