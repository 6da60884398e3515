"""The log-prob contract: what the backend reports for sampled tokens equals what the trainer
recomputes on the packed sequences, so the first importance ratio is 1."""
from __future__ import annotations

import pytest
import torch

from mas.agents.backends.base import GenerationRequest, SamplingParams
from mas.agents.backends.hf import HFBackend
from mas.agents.chat import PromptTokenizer
from mas.agents.models import load_model, load_tokenizer
from mas.records import Turn
from mas.training.losses import LossConfig
from mas.training.packing import pack_turns
from mas.training.strategies import OptimizerSettings, TorchStrategy
from mas.training.trainer import PolicyTrainer, UpdateSettings


def _turns_from(requests, generations, temperature):
    return [
        Turn(episode_id=i, group_id=i, env="t", agent="a", policy="p", seat=0, turn=0, step=0,
             prompt_ids=r.prompt_ids, response_ids=g.token_ids, logprobs=g.logprobs,
             temperature=temperature, allowed_ids=g.allowed_ids)
        for i, (r, g) in enumerate(zip(requests, generations))
    ]


@pytest.fixture(scope="module")
def setup(tiny_path):
    torch.manual_seed(0)
    tok = load_tokenizer(tiny_path)
    model = load_model(tiny_path)
    prompts = PromptTokenizer(tok)
    texts = ["hi", "Board:\n. X .\nLegal actions: <O(0,0)> <O(2,2)>", "a much longer prompt " * 12, "1 2 3"]
    requests = [GenerationRequest(prompts.first([{"role": "user", "content": t}])) for t in texts]
    # mixed lengths: left padding is in play
    assert len({len(r.prompt_ids) for r in requests}) == len(requests)
    return tok, model, prompts, requests


def _trainer(model, **update):
    return PolicyTrainer(model, TorchStrategy(model, OptimizerSettings(lr=1e-3)), LossConfig(),
                         UpdateSettings(**update))


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_free_generation_logprobs_match_trainer(setup, temperature):
    tok, model, _, requests = setup
    backend = HFBackend(model, tok)
    gens = backend.generate(requests, SamplingParams(temperature=temperature, max_new_tokens=12), seed=3)
    assert sum(len(g.token_ids) for g in gens) > len(gens)  # several tokens were sampled
    turns = _turns_from(requests, gens, temperature)
    sequences = pack_turns(turns)
    scored, _ = _trainer(model)._score(model, sequences)
    recomputed = torch.cat(scored)
    reported = torch.tensor([x for s in sequences for x in s.behaviour_logp])
    assert torch.allclose(recomputed, reported, atol=1e-4, rtol=0), (recomputed - reported).abs().max()


def test_constrained_generation_logprobs_match_trainer(setup):
    tok, model, prompts, requests = setup
    backend = HFBackend(model, tok)
    answers = [f"<answer>{a}</answer>" for a in ("<X(0,0)>", "<X(1,1)>", "<X(2,2)>", "<PASS>")]
    constrained = [GenerationRequest(r.prompt_ids, prompts.answer_candidates(answers)) for r in requests]
    gens = backend.generate(constrained, SamplingParams(temperature=1.0, max_new_tokens=16), seed=5)
    for g in gens:
        assert g.finished and g.text in answers
        assert len(g.allowed_ids) == len(g.token_ids)
        # forced tokens (one candidate left) have probability 1 under the renormalized policy
        for allowed, lp in zip(g.allowed_ids, g.logprobs):
            if len(allowed) == 1:
                assert lp == pytest.approx(0.0, abs=1e-6)
    turns = _turns_from(constrained, gens, 1.0)
    sequences = pack_turns(turns)
    scored, _ = _trainer(model)._score(model, sequences)
    reported = torch.tensor([x for s in sequences for x in s.behaviour_logp])
    assert torch.allclose(torch.cat(scored), reported, atol=1e-4, rtol=0)


def test_entropy_bonus_spreads_a_constrained_choice(setup, tiny_path):
    """With zero advantages the entropy bonus alone moves the update: the entropy of the allowed
    tokens' distribution rises where the answer branches (on average: one shared step moves every
    prompt), and stays 0 where a token is forced."""
    tok, _, prompts, requests = setup
    model = load_model(tiny_path)
    answers = [f"<answer>{a}</answer>" for a in ("<X(0,0)>", "<X(1,1)>", "<PASS>")]
    constrained = [GenerationRequest(r.prompt_ids, prompts.answer_candidates(answers)) for r in requests]
    gens = HFBackend(model, tok).generate(constrained, SamplingParams(temperature=1.0, max_new_tokens=16), seed=2)
    turns = _turns_from(constrained, gens, 1.0)
    trainer = PolicyTrainer(model, TorchStrategy(model, OptimizerSettings(lr=1e-4)), LossConfig(entropy_coef=1.0),
                            UpdateSettings(ppo_epochs=3))
    sequences = pack_turns(turns)
    before = torch.cat(trainer._score(model, sequences)[1])
    trainer.update(turns, [0.0] * len(turns), seed=0)
    after = torch.cat(trainer._score(model, sequences)[1])
    branching = before > 1e-6
    assert branching.any() and (~branching).any()
    assert after[branching].mean() > before[branching].mean() + 1e-3, (before, after)
    assert torch.all(after[~branching] < 1e-6)


def test_first_step_ratio_is_one(setup, tiny_path):
    tok, _, _, requests = setup
    model = load_model(tiny_path)
    gens = HFBackend(model, tok).generate(requests, SamplingParams(temperature=1.0, max_new_tokens=6), seed=1)
    turns = _turns_from(requests, gens, 1.0)
    metrics = _trainer(model).update(turns, [1.0, -1.0, 0.5, -0.5], seed=0)
    assert metrics["ratio_mean"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["clip_fraction"] == 0.0
    assert metrics["logprob_mismatch"] < 1e-4


def test_packing_scores_multi_turn_trajectory_in_one_sequence(setup):
    """Two turns of one seat where the second prompt extends the first become one sequence whose
    recomputed log-probs equal the backend's for both turns."""
    tok, model, prompts, _ = setup
    backend = HFBackend(model, tok)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=5)
    first_msgs = [{"role": "user", "content": "first"}]
    # constrained first answer: it surely ends with end-of-sequence, so the next prompt can extend it
    r1 = GenerationRequest(prompts.first(first_msgs), prompts.answer_candidates(["<answer><PASS></answer>", "ok"]))
    g1 = backend.generate([r1], sampling, seed=11)[0]
    second_msgs = first_msgs + [{"role": "assistant", "content": g1.text}, {"role": "user", "content": "second"}]
    r2 = GenerationRequest(prompts.extend(first_msgs, r1.prompt_ids, g1.token_ids, second_msgs))
    g2 = backend.generate([r2], sampling, seed=12)[0]
    assert g1.finished
    turns = [
        Turn(episode_id=0, group_id=0, env="t", agent="a", policy="p", seat=0, turn=k, step=k,
             prompt_ids=r.prompt_ids, response_ids=g.token_ids, logprobs=g.logprobs, temperature=1.0,
             allowed_ids=g.allowed_ids)
        for k, (r, g) in enumerate([(r1, g1), (r2, g2)])
    ]
    sequences = pack_turns(turns)
    assert len(sequences) == 1
    assert sequences[0].input_ids == r2.prompt_ids + g2.token_ids
    scored, _ = _trainer(model)._score(model, sequences)
    assert torch.allclose(scored[0], torch.tensor(g1.logprobs + g2.logprobs), atol=1e-4, rtol=0)
