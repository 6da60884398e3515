"""The HF backend's prefill (identical prompts once, a shared prefix once) and its sampler."""
from __future__ import annotations

import pytest
import torch

from mas.agents.backends.hf import HFBackend, sample_tokens
from mas.agents.backends.kv_cache import cache_layers
from mas.agents.models import load_model, load_tokenizer


@pytest.fixture(scope="module")
def backend(tiny_path):
    torch.manual_seed(0)
    return HFBackend(load_model(tiny_path).eval(), load_tokenizer(tiny_path))


def _plain_next_logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, -1]


def test_prefill_with_duplicates_and_shared_prefix_matches_one_prompt_at_a_time(backend):
    prefix = list(range(10, 30))  # 20 shared tokens: above the sharing threshold
    prompts = [prefix + [40, 41, 42], prefix + [50], prefix + [40, 41, 42], prefix + [60, 61], prefix + [50]]
    with torch.no_grad():
        state = backend.prefill(prompts)
        for row, ids in enumerate(prompts):
            torch.testing.assert_close(state.logits[row], _plain_next_logits(backend.model, ids), atol=1e-4, rtol=1e-4)
        # one decoding step on top of the shared cache gives the logits of the longer sequence
        fed = torch.tensor([70, 71, 72, 73, 74])
        backend.decode_step(state, fed)
        for row, ids in enumerate(prompts):
            expected = _plain_next_logits(backend.model, ids + [int(fed[row])])
            torch.testing.assert_close(state.logits[row], expected, atol=1e-4, rtol=1e-4)


def test_prefill_without_a_shared_prefix_left_pads(backend):
    prompts = [[5, 6, 7, 8], [9], [11, 12]]
    with torch.no_grad():
        state = backend.prefill(prompts)
        for row, ids in enumerate(prompts):
            torch.testing.assert_close(state.logits[row], _plain_next_logits(backend.model, ids), atol=1e-4, rtol=1e-4)
    assert state.attention.shape == (3, 4)


def test_sampler_follows_the_distribution_and_never_picks_excluded_tokens():
    probs = torch.tensor([0.0, 0.5, 0.0, 0.3, 0.2, 0.0])
    logp = probs.log().expand(20000, -1)
    drawn = sample_tokens(logp, torch.Generator().manual_seed(0))
    counts = torch.bincount(drawn, minlength=6).float() / len(drawn)
    assert counts[[0, 2, 5]].sum() == 0
    torch.testing.assert_close(counts, probs, atol=0.015, rtol=0)
    again = sample_tokens(logp, torch.Generator().manual_seed(0))
    assert torch.equal(drawn, again)


def test_sampler_never_returns_a_token_past_the_last_with_mass():
    # a draw of (almost) 1 must land on the last token with probability, not the zero tail
    logp = torch.tensor([[0.0, float("-inf"), float("-inf")]]).expand(5000, -1)
    assert sample_tokens(logp, torch.Generator().manual_seed(1)).eq(0).all()


def test_constrained_rows_answer_a_candidate_and_record_what_was_allowed(backend):
    from mas.agents.backends.base import GenerationRequest, SamplingParams
    from mas.agents.backends.vllm import _PrefixTree

    eos = backend.eos_id
    cands = [[30, 31, eos], [30, 32, 33, eos], [40, eos]]  # shared first token, different lengths
    requests = [GenerationRequest([5, 6, 7], cands), GenerationRequest([8, 9], None), GenerationRequest([5, 6], cands[:1])]
    for seed in range(8):
        gens = backend.generate(requests, SamplingParams(temperature=1.0, max_new_tokens=6), seed)
        for gen, req in zip((gens[0], gens[2]), (requests[0], requests[2])):
            assert gen.token_ids in req.candidates and gen.finished
            tree = _PrefixTree(req.candidates)
            assert gen.allowed_ids == [tree.allowed(gen.token_ids[:k]) for k in range(len(gen.token_ids))]
        assert gens[1].allowed_ids is None and len(gens[1].logprobs) == len(gens[1].token_ids)


def test_a_turn_that_extends_a_kept_turn_is_prefilled_from_its_cache(tiny_path):
    from mas.agents.backends.base import GenerationRequest, SamplingParams

    backend = HFBackend(load_model(tiny_path).eval(), load_tokenizer(tiny_path))
    answers = [[30, 31, backend.eos_id], [40, backend.eos_id]]  # constrained: every turn ends
    first = [GenerationRequest(list(range(10, 10 + n)), answers, keep=True) for n in (5, 9)]
    gens = backend.generate(first, SamplingParams(temperature=1.0, max_new_tokens=12), seed=3)
    finished = [g.finished for g in gens]
    assert all(finished) and len(backend.kept.entries) == 2
    row = 1
    previous = first[row].prompt_ids + gens[row].token_ids
    follow_up = previous + [50, 51, 52]
    fresh = [7, 8, 9, 10]  # a row without a kept turn in the same batch
    with torch.no_grad():
        state = backend.prefill([follow_up, fresh], reuse=[len(previous), 0])
        for r, ids in enumerate([follow_up, fresh]):
            torch.testing.assert_close(state.logits[r], _plain_next_logits(backend.model, ids), atol=1e-4, rtol=1e-4)
        backend.decode_step(state, torch.tensor([60, 61]))
        torch.testing.assert_close(state.logits[0], _plain_next_logits(backend.model, follow_up + [60]),
                                   atol=1e-4, rtol=1e-4)


def test_kept_turns_are_dropped_when_the_weights_change(tiny_path):
    from mas.agents.backends.base import GenerationRequest, SamplingParams

    model = load_model(tiny_path)
    backend = HFBackend(model, load_tokenizer(tiny_path))
    sampling = SamplingParams(temperature=1.0, max_new_tokens=12)
    answer = [[30, backend.eos_id]]
    backend.generate([GenerationRequest([10, 11, 12], answer, keep=True)] * 4, sampling, seed=0)
    assert backend.kept.entries
    with torch.no_grad():
        next(model.parameters()).add_(0.01)  # what an optimizer step does, in place
    backend.generate([GenerationRequest([10, 11, 12])], sampling, seed=1)
    assert not backend.kept.entries


def test_forced_tokens_cost_no_model_call(tiny_path):
    from mas.agents.backends.base import GenerationRequest, SamplingParams

    backend = HFBackend(load_model(tiny_path).eval(), load_tokenizer(tiny_path))
    calls = []
    backend.model.register_forward_hook(lambda *_: calls.append(1))
    eos, sampling = backend.eos_id, SamplingParams(temperature=1.0, max_new_tokens=8)
    (only,) = backend.generate([GenerationRequest([5, 6, 7], [[30, 31, eos]])], sampling, seed=0)
    assert only.token_ids == [30, 31, eos] and only.logprobs == [0.0, 0.0, 0.0] and calls == []
    # one real choice after a forced token: one forward (the prompt with the forced token), then
    # the forced remainder is free again
    (gen,) = backend.generate([GenerationRequest([5, 6, 7], [[30, 31, 40, eos], [30, 32, 40, eos]])], sampling, seed=1)
    assert len(calls) == 1 and gen.token_ids[0] == 30 and gen.token_ids[2:] == [40, eos]
    assert gen.logprobs[0] == gen.logprobs[2] == gen.logprobs[3] == 0.0 and gen.logprobs[1] < 0
    with torch.no_grad():
        logits = _plain_next_logits(backend.model, [5, 6, 7, 30])[[31, 32]]
    torch.testing.assert_close(torch.tensor(gen.logprobs[1]), torch.log_softmax(logits, -1)[gen.token_ids[1] - 31],
                               atol=1e-5, rtol=0)


def test_a_shared_prefix_is_computed_once_per_weights(tiny_path):
    backend = HFBackend(load_model(tiny_path).eval(), load_tokenizer(tiny_path))
    prefix = list(range(10, 30))
    calls = []
    backend.model.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        backend.prefill([prefix + [40], prefix + [50, 51]])
        assert len(calls) == 2  # the prefix, then the rows
        # next round shares more than the prefix: the kept prefix is reused, the rest is per row
        prompts = [prefix + [60, 61, 62], prefix + [60, 61, 70]]
        state = backend.prefill(prompts)
        assert len(calls) == 3
        for row, ids in enumerate(prompts):
            torch.testing.assert_close(state.logits[row], _plain_next_logits(backend.model, ids), atol=1e-4, rtol=1e-4)


def test_fast_decoding_gives_the_texts_of_batch_decode(backend):
    import random

    from mas.agents.backends.hf import _decode_many

    tok, rng = backend.tokenizer, random.Random(0)
    lists = [[rng.randrange(len(tok)) for _ in range(rng.randrange(0, 30))] for _ in range(100)]
    lists.append([tok.eos_token_id, 5, tok.pad_token_id])
    assert _decode_many(tok, lists) == tok.batch_decode(lists, skip_special_tokens=True)


def test_repeated_rows_copy_the_cache_only_when_it_is_read(backend):
    prefix = list(range(10, 30))
    with torch.no_grad():
        state = backend.prefill([prefix + [40]] * 3)
        assert state.logits.shape[0] == 3 and state.pending_rows is not None  # one row computed, not yet copied
        keys, _ = cache_layers(state.kv)[0]
        assert keys.shape[0] == 3 and state.pending_rows is None
