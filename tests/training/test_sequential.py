"""SeeUPO and HAPPO sequential updates on a real tiny model: pool order, the factor P carried from
pool to pool (checked against log-probs recomputed independently before and after each pool), and
invariance to the order of the batch's rows."""
from __future__ import annotations

import math
import random

import pytest
import torch

from mas.agents.models import load_tokenizer
from mas.orchestration.workers import PolicyWorker, WorkerSpec
from mas.records import Turn
from mas.seeding import stable_seed
from mas.training.sequential import agent_order, run_sequential
from mas.training.strategies import OptimizerSettings
from synthetic import episode_turns


def _worker(path: str, policy: str) -> PolicyWorker:
    return PolicyWorker(WorkerSpec(policy=policy, model_path=path, seed=3, optimizer=OptimizerSettings(lr=3e-3)))


def _recording(workers, turns, calls):
    """The controller's pool runner, plus an independent before/after scoring of every pool."""
    def update_pools(jobs):
        results = []
        for pool, adv in jobs:
            pool_turns = [turns[r] for r in pool.rows]
            worker = workers[pool.policy]
            before = worker.trainer.token_logprobs(pool_turns)
            result = worker.update_pool(pool_turns, adv)
            after = worker.trainer.token_logprobs(pool_turns)
            calls.append({"pool": pool, "adv": adv, "result": result, "before": before, "after": after})
            results.append(result)
        return results
    return update_pools


@pytest.fixture(scope="module")
def vocab(tiny_path):
    tok = load_tokenizer(tiny_path)
    return tok.eos_token_id, len(tok)


def _seeupo_batch(vocab) -> list[Turn]:
    eos, size = vocab
    rng = random.Random(0)
    plans = [  # solver turns 3, 2, 1, 3 times; the verifier answers after each
        [("solver", "main", 0), ("verifier", "main", 1)] * 3,
        [("solver", "main", 0), ("verifier", "main", 1)] * 2,
        [("solver", "main", 0), ("verifier", "main", 1)],
        [("solver", "main", 0), ("verifier", "main", 1)] * 3,
    ]
    return [t for e, plan in enumerate(plans) for t in episode_turns(rng, e, plan, eos, size)]


def test_seeupo_pools_go_backwards_and_factors_are_products_of_later_ratios(tiny_path, vocab):
    turns = _seeupo_batch(vocab)
    advantages = [((i * 7) % 5 - 2) / 2 for i in range(len(turns))]
    workers = {"main": _worker(tiny_path, "main")}
    calls = []
    _, labels = run_sequential("seeupo", turns, advantages, ["main"], _recording(workers, turns, calls))
    assert labels == ["main: turn 2", "main: turn 1", "main: turn 0"]
    assert [len(c["pool"].rows) for c in calls] == [4, 6, 8]  # two seats; episodes of 3, 2, 1, 3 rounds

    ratio = {}  # (episode, seat, turn) -> recomputed sequence ratio of that turn after its pool
    for call in calls:
        for k, row in enumerate(call["pool"].rows):
            t = turns[row]
            later = [ratio[(t.episode_id, t.seat, u)] for u in range(t.turn + 1, 3) if (t.episode_id, t.seat, u) in ratio]
            assert call["adv"][k] == pytest.approx(advantages[row] * math.prod(later), rel=1e-5, abs=1e-9)
            delta = [a - b for a, b in zip(call["after"][k], call["before"][k])]
            assert call["result"]["log_ratio_sum"][k] == pytest.approx(sum(delta), abs=1e-5)
            assert call["result"]["tokens"][k] == len(t.response_ids)
            ratio[(t.episode_id, t.seat, t.turn)] = math.exp(sum(delta) / len(delta))
    assert any(abs(r - 1) > 1e-3 for r in ratio.values())  # the pools did move the policy


def test_seeupo_does_not_depend_on_the_order_of_rows(tiny_path, vocab):
    turns = _seeupo_batch(vocab)
    advantages = [((i * 7) % 5 - 2) / 2 for i in range(len(turns))]
    order = list(range(len(turns)))
    random.Random(5).shuffle(order)
    params = []
    for rows in (list(range(len(turns))), order):
        workers = {"main": _worker(tiny_path, "main")}
        batch = [turns[i] for i in rows]
        run_sequential("seeupo", batch, [advantages[i] for i in rows], ["main"],
                       _recording(workers, batch, []))
        params.append(workers["main"].state_dict())
    for key in params[0]:
        torch.testing.assert_close(params[0][key], params[1][key], atol=1e-6, rtol=1e-5)


# --- HAPPO ----------------------------------------------------------------------------------------
def _happo_batch(vocab) -> list[Turn]:
    eos, size = vocab
    rng = random.Random(1)
    plan = [("a", "p1", 0), ("b", "p2", 1), ("a", "p1", 0)]
    return [t for e in range(4) for t in episode_turns(rng, e, plan, eos, size)]


@pytest.mark.parametrize("order, expected", [
    ("reverse", ["p2: agent b", "p1: agent a"]),
    ("forward", ["p1: agent a", "p2: agent b"]),
    (["a", "b"], ["p1: agent a", "p2: agent b"]),
])
def test_happo_orders_with_two_policies(tiny_path, vocab, order, expected):
    turns = _happo_batch(vocab)
    advantages = [round(math.sin(i + 1), 3) for i in range(len(turns))]
    workers = {p: _worker(tiny_path, p) for p in ("p1", "p2")}
    calls = []
    metrics, labels = run_sequential("happo", turns, advantages, ["p1", "p2"], _recording(workers, turns, calls),
                                     order=order)
    assert labels == expected and set(metrics) == {"p1", "p2"}
    first, second = calls
    # the second agent's advantages carry exp(mean over the first agent's tokens in the episode of
    # log pi_new - log pi_old), recomputed independently
    per_episode = {}
    for k, row in enumerate(first["pool"].rows):
        deltas = [a - b for a, b in zip(first["after"][k], first["before"][k])]
        per_episode.setdefault(turns[row].episode_id, []).extend(deltas)
    factors = []
    for k, row in enumerate(second["pool"].rows):
        deltas = per_episode[turns[row].episode_id]
        factors.append(math.exp(sum(deltas) / len(deltas)))
        assert second["adv"][k] == pytest.approx(advantages[row] * factors[-1], rel=1e-6, abs=1e-9)
    assert max(abs(f - 1) for f in factors) > 1e-3  # the first agent's update did change the factor
    assert first["adv"] == [advantages[r] for r in first["pool"].rows]


def test_happo_random_order_is_seeded():
    turns = [Turn(0, 0, "w", "a", "p1", 0, 0, 0), Turn(0, 0, "w", "b", "p2", 1, 0, 1), Turn(0, 0, "w", "c", "p2", 2, 0, 2)]
    seeds = [stable_seed(7, it, 3) for it in range(30)]
    orders = [tuple(agent_order(turns, "random", s)) for s in seeds]
    assert orders == [tuple(agent_order(turns, "random", s)) for s in seeds]  # reproducible
    assert len(set(orders)) == 6  # every permutation of three agents turns up
    with pytest.raises(ValueError, match="each training agent once"):
        agent_order(turns, ["a", "b"], 0)
    with pytest.raises(ValueError, match="happo order"):
        agent_order(turns, "sideways", 0)
