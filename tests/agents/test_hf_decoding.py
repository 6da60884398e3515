"""The HF backend's prefill (identical prompts once, a shared prefix once) and its sampler."""
from __future__ import annotations

import pytest
import torch

from mas.agents.backends.hf import HFBackend, sample_tokens
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
