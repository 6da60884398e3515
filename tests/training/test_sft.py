"""`mas sft`: the loss falls, only response tokens are trained, and the fine-tuned model then
answers the trained prompts with the trained responses."""
from __future__ import annotations

import json

import pytest
import torch

from mas.agents.backends.base import GenerationRequest, SamplingParams
from mas.agents.backends.hf import HFBackend
from mas.agents.chat import PromptTokenizer
from mas.agents.models import load_model, load_tokenizer
from mas.cli import main
from mas.sft_command import read_pairs
from mas.training.sft import _collate

PAIRS = [{"prompt": f"Say the word for {n}.", "response": word}
         for n, word in [(1, "one"), (2, "two"), (3, "three"), (4, "four")]]


def test_labels_cover_the_response_only():
    ids, labels, mask = _collate([([5, 6, 7], [8, 9, 2])], pad_id=0)
    assert labels.tolist() == [[-100, -100, -100, 8, 9, 2]] and mask.tolist() == [[1] * 6]


def test_sft_teaches_the_responses(tmp_path, tiny_path, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    out = tmp_path / "sft-model"
    assert main(["sft", "--policy", tiny_path, "--data", str(data), "--out", str(out), "--epochs", "40",
                 "--lr", "0.003", "--batch-size", "4", "--threads", "2"]) == 0
    losses = [float(x) for x in capsys.readouterr().out.split("loss per epoch ")[1].split(";")[0].split()]
    assert losses[-1] < 0.2 * losses[0]
    tok, model = load_tokenizer(str(out)), load_model(str(out))
    prompts = PromptTokenizer(tok)
    backend = HFBackend(model, tok)
    requests = [GenerationRequest(prompts.first([{"role": "user", "content": p["prompt"]}])) for p in PAIRS]
    texts = [g.text for g in backend.generate(requests, SamplingParams(temperature=0.0, max_new_tokens=8), 0)]
    assert texts == [p["response"] for p in PAIRS]


def test_bad_pairs_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: each line needs 'prompt' and 'response'"):
        read_pairs(str(bad))
    assert torch.is_tensor(_collate([([1], [2])], 0)[0])
