"""The tokenizer of the built-in `tiny-*` models: a byte-level BPE trained with `tokenizers` on text
the project writes (rendered games), so that whole action strings such as `<X(1,2)>` and common words
become single tokens while any other text still encodes (byte fallback, no unknown token)."""
from __future__ import annotations

from typing import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS = "<|pad|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [PAD, BOS, EOS]

# ChatML layout; the end-of-turn marker is the end-of-sequence token, so a finished answer ends with it.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Pieces BPE may merge within: a bracketed tag or action kept whole (`<answer>`, `<X(1,2)>`), a word
# with its leading space, a single digit (so numbers stay compositional), one other symbol, or spaces.
PIECES = r"<[^<>\s]{1,24}>| ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9<]|<|\n|[^\S\n]+"


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Train the byte-level BPE on `corpus` and wrap it as a left-padding fast tokenizer with a chat
    template. Deterministic for a given corpus."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PIECES), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast
