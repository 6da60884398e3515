"""LoRA policies (peft): only adapters train, the frozen base is the KL reference, checkpoints hold
merged weights that plain transformers loads, and training resumes from the saved adapters."""
from __future__ import annotations

import random

import pytest
import torch

pytest.importorskip("peft", reason="LoRA needs peft (pip install peft)")

from synthetic import episode_turns
from transformers import AutoModelForCausalLM

from mas.agents.models import load_model, load_tokenizer
from mas.orchestration.workers import PolicyWorker, WorkerSpec
from mas.training.losses import LossConfig
from mas.training.strategies import OptimizerSettings

LORA = {"r": 4, "alpha": 8.0, "target_modules": ["q_proj", "v_proj"], "dropout": 0.0}


def _worker(path, kl=0.0):
    return PolicyWorker(WorkerSpec(policy="p", model_path=path, seed=1, lora=LORA,
                                   optimizer=OptimizerSettings(lr=1e-2, grad_clip=0.0), loss=LossConfig(kl_coef=kl)))


@pytest.fixture(scope="module")
def batch(tiny_path):
    tok = load_tokenizer(tiny_path)
    rng = random.Random(3)
    turns = [t for e in range(4) for t in episode_turns(rng, e, [("a", "p", 0), ("a", "p", 0)], tok.eos_token_id,
                                                           len(tok))]
    return turns, [0.5 * ((i * 3) % 5 - 2) for i in range(len(turns))]


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_only_adapters_train_and_the_base_is_the_kl_reference(tiny_path, batch):
    turns, advantages = batch
    worker = _worker(tiny_path, kl=0.1)
    trainable = [n for n, p in worker.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    base = load_model(tiny_path)
    ids = torch.tensor([turns[0].prompt_ids + turns[0].response_ids])
    before = _logits(worker.model, ids)
    assert torch.allclose(before, _logits(base, ids), atol=1e-5)  # B starts at zero
    metrics = worker.update(turns, advantages, seed=0)
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-6)  # first step: policy == reference
    worker.update(turns, advantages, seed=1)
    after = _logits(worker.model, ids)
    assert not torch.allclose(after, before, atol=1e-4)  # the adapters moved the policy
    with worker.peft.disable_adapter():  # ...and switching them off gives the untouched base back
        assert torch.allclose(_logits(worker.model, ids), _logits(base, ids), atol=1e-5)
    assert worker.update(turns, advantages, seed=2)["kl"] > 0


def test_checkpoint_holds_merged_weights_and_resume_restores_adapters(tiny_path, batch, tmp_path):
    turns, advantages = batch
    worker = _worker(tiny_path)
    worker.update(turns, advantages, seed=0)
    (tmp_path / "trainer_state").mkdir()
    worker.save(str(tmp_path))
    ids = torch.tensor([turns[1].prompt_ids + turns[1].response_ids])
    live = _logits(worker.model, ids)
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "p")  # no peft involved
    assert not any("lora" in k for k in plain.state_dict())
    assert torch.allclose(_logits(plain, ids), live, atol=1e-4)
    resumed = _worker(tiny_path)
    resumed.load(str(tmp_path))
    assert torch.allclose(_logits(resumed.model, ids), live, atol=1e-5)
    assert torch.equal(resumed.state_dict()["model.layers.0.self_attn.q_proj.weight"],
                       worker.state_dict()["model.layers.0.self_attn.q_proj.weight"])


def test_gradient_checkpointing_gives_the_same_update(tiny_path, batch):
    turns, advantages = batch
    plain = _worker(tiny_path)
    checkpointed = PolicyWorker(WorkerSpec(policy="p", model_path=tiny_path, seed=1, lora=LORA,
                                           gradient_checkpointing=True,
                                           optimizer=OptimizerSettings(lr=1e-2, grad_clip=0.0)))
    a = plain.update(turns, advantages, seed=0)
    b = checkpointed.update(turns, advantages, seed=0)
    assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
    merged_a, merged_b = plain.state_dict(), checkpointed.state_dict()
    assert all(torch.allclose(merged_a[k], merged_b[k], atol=1e-6) for k in merged_a)
