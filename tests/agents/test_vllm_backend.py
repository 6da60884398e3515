"""The vLLM backend without vLLM: the module imports, the engine refuses with one clear line, and
the pure helpers turn vLLM-shaped outputs (plain stand-ins, as input data) into our records."""
import importlib
import sys
from types import SimpleNamespace

import pytest
import torch

from mas.agents.backends.base import GenerationRequest, SamplingParams
from mas.agents.backends.vllm import _PrefixTree
from mas.agents.backends.vllm import (
    VLLM_MISSING,
    VLLMBackend,
    constrained_decode,
    generation_from_output,
    sampling_kwargs,
    save_weights,
    vllm_available,
)

no_vllm = pytest.mark.skipif(vllm_available(), reason="vllm is installed here")
EOS = 2


def decode(ids):
    return " ".join(str(i) for i in ids)


def completion(token_ids, logprobs, finish_reason):
    """What vLLM's CompletionOutput carries: one {token id: Logprob} dict per sampled token."""
    steps = [{tok: SimpleNamespace(logprob=lp)} for tok, lp in zip(token_ids, logprobs)]
    return SimpleNamespace(token_ids=token_ids, logprobs=steps, finish_reason=finish_reason)


@no_vllm
def test_import_does_not_need_vllm():
    sys.modules.pop("mas.agents.backends.vllm", None)
    importlib.import_module("mas.agents.backends.vllm")
    assert "vllm" not in sys.modules
    assert not vllm_available()


@no_vllm
def test_constructing_without_vllm_fails_with_one_line():
    with pytest.raises(ImportError) as err:
        VLLMBackend("some/model")
    assert str(err.value) == "backend 'vllm' needs the vllm extra (GPU machines): pip install -e '.[vllm]'"
    assert str(err.value) == VLLM_MISSING and "\n" not in VLLM_MISSING
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_sampling_kwargs_maps_top_k_off_to_minus_one():
    kw = sampling_kwargs(SamplingParams(temperature=0.7, top_p=0.9, top_k=0, max_new_tokens=5))
    assert kw == {"temperature": 0.7, "top_p": 0.9, "top_k": -1, "logprobs": 0, "detokenize": False}
    assert sampling_kwargs(SamplingParams(top_k=5))["top_k"] == 5


def test_generation_from_output_takes_sampled_logprobs_and_eos_stop():
    out = completion([7, 9, EOS], [-0.5, -1.25, -0.125], "stop")
    out.logprobs[1][4] = SimpleNamespace(logprob=-3.0)  # another token's entry is ignored
    gen = generation_from_output(out, EOS, decode)
    assert gen.token_ids == [7, 9, EOS]
    assert gen.logprobs == [-0.5, -1.25, -0.125]
    assert gen.text == "7 9 2"
    assert gen.finished and gen.allowed_ids is None


def test_generation_from_output_length_or_other_stop_is_not_finished():
    assert not generation_from_output(completion([7, 9], [-0.5, -1.0], "length"), EOS, decode).finished
    # stopped on a stop id other than the tokenizer's end-of-sequence: not "ended with EOS"
    assert not generation_from_output(completion([7, 5], [-0.5, -1.0], "stop"), EOS, decode).finished
    assert not generation_from_output(completion([], [], "length"), EOS, decode).finished


def test_generation_from_output_requires_logprobs():
    out = SimpleNamespace(token_ids=[7], logprobs=None, finish_reason="length")
    with pytest.raises(ValueError, match="logprobs=0"):
        generation_from_output(out, EOS, decode)


class RecordingSampler:
    """The sampling step as input data: picks the largest allowed id with log-prob -1.5 and keeps
    what it was asked."""

    def __init__(self):
        self.calls = []

    def __call__(self, rows):
        self.calls.append(rows)
        return [(max(ids), -1.5) for _, ids, _ in rows]


def test_constrained_decode_follows_prefix_tree_and_forces_single_tokens():
    cands = [[5, 6, EOS], [5, 7, EOS], [8, EOS]]
    req = GenerationRequest(prompt_ids=[1, 3], candidates=cands)
    sampler = RecordingSampler()
    (gen,) = constrained_decode([req], [11], 10, EOS, sampler, decode)
    # step 0: {5, 8} -> 8 sampled; step 1: only EOS follows 8 -> forced, log-prob 0, no engine call
    assert gen.token_ids == [8, EOS]
    assert gen.logprobs == [-1.5, 0.0]
    assert gen.allowed_ids == [[5, 8], [EOS]]
    assert gen.finished and gen.text == "8 2"
    assert len(sampler.calls) == 1
    ((context, allowed, _seed),) = sampler.calls[0]
    assert context == [1, 3] and allowed == [5, 8]
    assert gen.allowed_ids == [_PrefixTree(cands).allowed(gen.token_ids[:k]) for k in range(2)]


def test_constrained_decode_batches_rows_and_derives_distinct_seeds():
    a = GenerationRequest(prompt_ids=[1], candidates=[[5, 6, EOS], [5, 7, EOS]])  # forced 5, then {6, 7}
    b = GenerationRequest(prompt_ids=[1, 1], candidates=[[4, EOS], [9, EOS]])
    sampler = RecordingSampler()
    ga, gb = constrained_decode([a, b], [100, 200], 10, EOS, sampler, decode)
    assert ga.token_ids == [5, 7, EOS] and ga.logprobs == [0.0, -1.5, 0.0]
    assert ga.allowed_ids == [[5], [6, 7], [EOS]]
    assert gb.token_ids == [9, EOS] and gb.logprobs == [-1.5, 0.0]
    step0, step1 = sampler.calls
    assert [row[0] for row in step0] == [[1, 1]]  # only b samples at step 0
    assert [row[0] for row in step1] == [[1, 5]]  # a's context carries its forced token
    seeds = [row[2] for call in sampler.calls for row in call]
    assert len(set(seeds)) == len(seeds)
    again = RecordingSampler()
    constrained_decode([a, b], [100, 200], 10, EOS, again, decode)
    assert [row[2] for call in again.calls for row in call] == seeds  # same call seed, same seeds


def test_constrained_decode_cut_off_is_not_finished():
    req = GenerationRequest(prompt_ids=[1], candidates=[[5, 6, EOS], [5, 7, EOS]])
    (gen,) = constrained_decode([req], [0], 2, EOS, RecordingSampler(), decode)
    assert gen.token_ids == [5, 7] and not gen.finished
    assert gen.allowed_ids == [[5], [6, 7]]


def test_save_weights_writes_tied_tensors_as_separate_cpu_copies(tmp_path):
    from safetensors.torch import load_file

    embed = torch.nn.Parameter(torch.arange(6.0).reshape(3, 2))
    path = save_weights({"model.embed_tokens.weight": embed, "lm_head.weight": embed}, str(tmp_path))
    got = load_file(path)
    assert set(got) == {"model.embed_tokens.weight", "lm_head.weight"}
    assert torch.equal(got["lm_head.weight"], embed.detach()) and not got["lm_head.weight"].requires_grad
