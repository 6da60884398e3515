"""Identical sequences in one update run one forward and backward carrying every copy's advantages:
the parameters after the update equal those of the update that trains each copy on its own."""
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
from mas.training.trainer import PolicyTrainer, UpdateSettings, duplicate_groups


@pytest.fixture(scope="module")
def turns(tiny_path):
    """24 constrained answers to 3 prompts among 2 answers each: many exact duplicates."""
    tok = load_tokenizer(tiny_path)
    prompts = PromptTokenizer(tok)
    answers = prompts.answer_candidates(["<answer><PASS></answer>", "<answer><BET></answer>"])
    texts = ["Your card: J", "Your card: Q", "Your card: K"]
    requests = [GenerationRequest(prompts.first([{"role": "user", "content": t}]), answers)
                for t in texts for _ in range(8)]
    gens = HFBackend(load_model(tiny_path), tok).generate(requests, SamplingParams(temperature=1.0, max_new_tokens=16),
                                                         seed=4)
    return [Turn(episode_id=i, group_id=i // 2, env="t", agent="a", policy="p", seat=0, turn=0, step=0,
                 prompt_ids=r.prompt_ids, response_ids=g.token_ids, logprobs=g.logprobs, temperature=1.0,
                 allowed_ids=g.allowed_ids) for i, (r, g) in enumerate(zip(requests, gens))]


def _update(tiny_path, turns, advantages, merge, loss, **update):
    """The parameter change of one update. Adam with eps = 1 steps about lr * gradient for these
    small gradients: linear, so float rounding is not blown up as g / |g| would blow it up."""
    torch.manual_seed(0)
    model = load_model(tiny_path)
    start = [p.detach().clone() for p in model.parameters()]
    trainer = PolicyTrainer(model, TorchStrategy(model, OptimizerSettings(lr=1.0, eps=1.0)), loss,
                            UpdateSettings(merge_duplicates=merge, **update),
                            reference_context=None, ref_model=load_model(tiny_path) if loss.kl_coef else None)
    metrics = trainer.update(turns, advantages, seed=0)
    return [p.detach() - p0 for p, p0 in zip(model.parameters(), start)], metrics


def _assert_same_change(merged, single):
    scale = max(float(d.abs().max()) for d in single)
    assert scale > 1e-4  # the update moved the model
    worst = max(float((a - b).abs().max()) for a, b in zip(merged, single))
    assert worst <= 1e-4 * scale, (worst, scale)


def test_the_batch_has_duplicates(turns):
    sequences = pack_turns(turns)
    groups = duplicate_groups(sequences, range(len(sequences)))
    assert 3 <= len(groups) <= 6 < len(sequences)


@pytest.mark.parametrize("loss,update", [
    (LossConfig(), {}),
    (LossConfig(kl_coef=0.1, entropy_coef=0.2, agg="seq-mean-token-mean", dual_clip=2.0), {"ppo_epochs": 2}),
    (LossConfig(entropy_coef=0.1), {"mini_batches": 2, "micro_batch_tokens": 64}),
])
def test_merged_update_equals_the_update_of_each_copy(tiny_path, turns, loss, update):
    advantages = torch.randn(len(turns), generator=torch.Generator().manual_seed(1)).tolist()
    merged, m_metrics = _update(tiny_path, turns, advantages, True, loss, **update)
    single, s_metrics = _update(tiny_path, turns, advantages, False, loss, **update)
    _assert_same_change(merged, single)
    for key in ("pg_loss", "clip_fraction", "ratio_mean", "entropy", "grad_norm"):
        assert m_metrics[key] == pytest.approx(s_metrics[key], abs=1e-5), key


def test_merged_blend_advantages(tiny_path, turns):
    """Advantages given as (weight, advantage) blends (COPO) merge the same way."""
    g = torch.Generator().manual_seed(2)
    blends = [[(0.3, float(a)), (0.7, float(b))] for a, b in torch.randn(len(turns), 2, generator=g)]
    merged, _ = _update(tiny_path, turns, blends, True, LossConfig(kl_coef=0.05))
    single, _ = _update(tiny_path, turns, blends, False, LossConfig(kl_coef=0.05))
    _assert_same_change(merged, single)
