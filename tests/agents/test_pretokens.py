"""The pre-token encoder gives exactly the tokenizers library's ids for mas's tiny tokenizer, and
is not used for a tokenizer built any other way."""
from __future__ import annotations

import json
import random

import pytest
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

from mas.agents import pretokens
from mas.agents.chat import PromptTokenizer
from mas.agents.models import load_tokenizer
from mas.agents.pretokens import PretokenEncoder

# letters, digits, tags, every kind of space (U+001C-U+001F: whitespace to Python's re only), other scripts
ALPHABET = list("abcXYZ019 <>()/,.\n\t\r\x0b\x0c\x1c\x1d\x1f\x85\xa0\u2003\u3000é漢🙂-_'\"") + [
    "<answer>", "</answer>", "<X(1,2)>", "  ", "\n\n", " 12", "Legal actions:", "\nBoard:\n. X .\n"]


@pytest.fixture(scope="module")
def tokenizer(tiny_path):
    return load_tokenizer(tiny_path)


def _random_texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 40))) for _ in range(count)]


def _library(tokenizer, texts):
    return [e.ids for e in tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)]


def test_equals_the_library_on_random_text(tokenizer):
    encoder = PretokenEncoder.for_tokenizer(tokenizer)
    assert encoder is not None
    texts = _random_texts(3000)
    assert encoder.encode_many(texts) == _library(tokenizer, texts)
    assert encoder.encode_many(texts[::-1]) == _library(tokenizer, texts[::-1])  # now from the memos


def test_python_only_whitespace_is_what_needs_the_library(tokenizer, monkeypatch):
    """Without the exception for U+001C-U+001F the split differs from the library's: the test
    above would catch a regex whose meaning drifts between the two engines."""
    monkeypatch.setattr(pretokens, "_PYTHON_ONLY_SPACE", pretokens.re.compile("(?!)"))
    encoder = PretokenEncoder.for_tokenizer(tokenizer)
    texts = _random_texts(3000)
    assert encoder.encode_many(texts) != _library(tokenizer, texts)


def test_memos_start_afresh_when_full(tokenizer, monkeypatch):
    monkeypatch.setattr(pretokens, "MEMO_LINES", 50)
    monkeypatch.setattr(pretokens, "MEMO_PRETOKENS", 50)
    encoder = PretokenEncoder.for_tokenizer(tokenizer)
    texts = _random_texts(200, seed=1)
    for text in texts:  # one at a time: a memo holds at most its bound plus one call's new entries
        assert encoder.encode_many([text]) == _library(tokenizer, [text])
        assert len(encoder.line_ids) <= 50 + 41 and len(encoder.ids) <= 50 + 41


def test_other_tokenizers_keep_the_library_path(tokenizer):
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r" ?[A-Za-z]+|\s+|."
    other = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)), eos_token="<|im_end|>")
    other.chat_template = tokenizer.chat_template
    assert PretokenEncoder.for_tokenizer(other) is None
    assert PromptTokenizer(other)._pretokens is None
    assert PromptTokenizer(tokenizer)._pretokens is not None
