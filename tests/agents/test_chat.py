"""Prompt tokenization: pieces between special tokens tokenized apart (and remembered) give exactly
the ids of tokenizing the whole rendered chat; seen chats come from a bounded memo."""
from __future__ import annotations

import pytest

from mas.agents import chat
from mas.agents.chat import PromptTokenizer
from mas.agents.models import load_tokenizer

CHATS = [
    [{"role": "system", "content": "Tic-tac-toe: three in a row wins. Answer <answer>ACTION</answer>."},
     {"role": "user", "content": "Legal actions: <X(0,0)> <X(1,1)>\nBoard:\n. . .\n  spaced  \n"}],
    [{"role": "user", "content": "What is 12 + 7?  Think, then write \\boxed{N}."}],
    [{"role": "system", "content": "s"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "<answer>b</answer>"},
     {"role": "user", "content": " c\n\n"}],
]


@pytest.fixture(scope="module")
def tokenizer(tiny_path):
    return load_tokenizer(tiny_path)


def _whole(tokenizer, chat_messages):
    text = tokenizer.apply_chat_template(chat_messages, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_piecewise_tokenization_equals_whole_text(tokenizer):
    prompts = PromptTokenizer(tokenizer)
    assert prompts._special is not None  # the tiny tokenizer's special tokens strip nothing: pieces are used
    assert prompts.first_many(CHATS) == [_whole(tokenizer, c) for c in CHATS]
    assert prompts.first_many(CHATS[::-1]) == [_whole(tokenizer, c) for c in CHATS[::-1]]  # now from the memo


def test_memo_hands_out_copies(tokenizer):
    prompts = PromptTokenizer(tokenizer)
    ids = prompts.first(CHATS[0])
    ids.append(-1)
    assert prompts.first(CHATS[0]) == _whole(tokenizer, CHATS[0])


def test_memo_stays_within_its_token_budget(tokenizer, monkeypatch):
    monkeypatch.setattr(chat, "MEMO_TOKENS", 60)
    prompts = PromptTokenizer(tokenizer)
    for k in range(20):
        prompts.first([{"role": "user", "content": f"question number {k} of many"}])
    assert prompts._chats.tokens <= 60 and len(prompts._chats.entries) < 20
    assert prompts.first([{"role": "user", "content": "question number 0 of many"}]) == _whole(
        tokenizer, [{"role": "user", "content": "question number 0 of many"}])


@pytest.mark.parametrize("generation_prompt", [True, False])
def test_fast_rendering_equals_apply_chat_template(tokenizer, generation_prompt):
    from mas.agents.chat_render import ChatRenderer

    renderer = ChatRenderer(tokenizer)
    assert renderer._template is not None  # the tiny template renders the probe exactly: the fast path is on
    expected = tokenizer.apply_chat_template(CHATS, add_generation_prompt=generation_prompt, tokenize=False)
    assert renderer.render_many(CHATS, generation_prompt) == expected


def test_messages_with_more_than_role_and_content_take_the_slow_path(tokenizer, monkeypatch):
    from mas.agents.chat_render import ChatRenderer

    renderer = ChatRenderer(tokenizer)
    chat_with_name = [{"role": "user", "content": "hi", "name": "alice"}]
    monkeypatch.setattr(renderer, "_render_fast", lambda *a: pytest.fail("fast path used for a non-plain message"))
    assert renderer.render_many([chat_with_name]) == tokenizer.apply_chat_template(
        [chat_with_name], add_generation_prompt=True, tokenize=False)
