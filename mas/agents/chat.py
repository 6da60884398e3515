"""Chat messages -> prompt token ids, such that a seat's prompt at its next turn extends its previous
prompt + the exact response ids it sampled (docs/architecture.md, "Contracts"): only the new messages are
tokenized, earlier text never is."""
from __future__ import annotations

import re
import warnings
from collections import OrderedDict

from mas.agents.chat_render import PROBE, ChatRenderer

MEMO_TOKENS = 500_000  # per memo, least recently used out first (~20 MB each)


class _TokenMemo:
    """Token ids by key, bounded by the number of tokens held."""

    def __init__(self, budget: int | None = None):
        self.budget = budget or MEMO_TOKENS
        self.entries: OrderedDict = OrderedDict()
        self.tokens = 0

    def get(self, key):
        ids = self.entries.get(key)
        if ids is not None:
            self.entries.move_to_end(key)
        return ids

    def put(self, key, ids: tuple[int, ...]) -> None:
        if key in self.entries:
            return
        self.entries[key] = ids
        self.tokens += len(ids)
        while self.tokens > self.budget and len(self.entries) > 1:
            _, dropped = self.entries.popitem(last=False)
            self.tokens -= len(dropped)


class PromptTokenizer:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._renderer = ChatRenderer(tokenizer)
        self._eos = tokenizer.eos_token_id  # a property that looks the token up on every read
        self._candidate_cache: dict[str, list[int]] = {}
        # Games revisit states (every game of a batch opens with the same prompt): a seen chat is
        # neither rendered nor tokenized again.
        self._chats = _TokenMemo()
        # Text between special tokens is tokenized on its own, so the pieces of a rendered chat (a
        # system prompt every seat shares) are tokenized once; used only where that is exact.
        self._pieces = _TokenMemo()
        tokens = _splittable_special_tokens(tokenizer)
        self._special_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in tokens}
        self._special = re.compile("(" + "|".join(map(re.escape, tokens)) + ")") if tokens else None
        if self._special is not None and not self._pieces_exact():
            self._special = None

    def render(self, messages: list[dict], generation_prompt: bool = True) -> str:
        return self._renderer.render_many([messages], generation_prompt)[0]

    def render_many(self, chats: list[list[dict]]) -> list[str]:
        """`render` of many chats (with the generation prompt) in one call."""
        return self._renderer.render_many(chats)

    def encode_text(self, text: str) -> list[int]:
        return self.encode_many([text])[0]

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        backend = getattr(self.tokenizer, "backend_tokenizer", None)  # a fast tokenizer's Rust core
        if backend is None:
            return self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        # encode_batch_fast (tokenizers >= 0.21) skips the character offsets nobody reads here
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
        return [e.ids for e in encode(texts, add_special_tokens=False)]

    def encode_many(self, texts: list[str]) -> list[list[int]]:
        if self._special is None:
            return self._tokenize(texts)
        split = [self._special.split(text) for text in texts]  # plain, special, plain, ...
        new = list(dict.fromkeys(p for parts in split for p in parts[::2] if p and self._pieces.get(p) is None))
        if new:
            for piece, ids in zip(new, self._tokenize(new)):
                self._pieces.put(piece, tuple(ids))
        out = []
        for parts in split:
            ids: list[int] = []
            for k, part in enumerate(parts):
                if k % 2:
                    ids.append(self._special_ids[part])
                elif part:
                    piece = self._pieces.get(part)
                    ids.extend(piece if piece is not None else self.tokenizer.encode(part, add_special_tokens=False))
            out.append(ids)
        return out

    def _pieces_exact(self) -> bool:
        probe = self.render(PROBE)
        return self.encode_many([probe])[0] == self.tokenizer(probe, add_special_tokens=False)["input_ids"]

    def first(self, messages: list[dict]) -> list[int]:
        return self.first_many([messages])[0]

    def first_many(self, chats: list[list[dict]]) -> list[list[int]]:
        """Prompt ids of each chat: remembered ones from the memo, the rest rendered and tokenized
        together."""
        keys = [tuple(tuple(m.items()) for m in chat) for chat in chats]
        found = {key: ids for key in keys if (ids := self._chats.get(key)) is not None}
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            by_key = dict(zip(keys, chats))
            texts = self.render_many([by_key[k] for k in missing])
            for key, ids in zip(missing, self.encode_many(texts)):
                found[key] = tuple(ids)
                self._chats.put(key, found[key])
        return [list(found[key]) for key in keys]

    def extend(
        self,
        prev_messages: list[dict],
        prev_ids: list[int],
        response_ids: list[int],
        messages: list[dict],
    ) -> list[int]:
        """Prompt ids for `messages`, a continuation of `prev_messages` answered by `response_ids`:
        `prev_ids + response_ids + ids of the newly rendered text`."""
        return self.extend_many([(prev_messages, prev_ids, response_ids, messages)])[0]

    def extend_many(self, items: list[tuple[list[dict], list[int], list[int], list[dict]]]) -> list[list[int]]:
        """`extend` for many (prev_messages, prev_ids, response_ids, messages) at once: the chats
        are rendered and the new text tokenized in batched calls."""
        if not items:
            return []
        before = self.render_many([prev for prev, _, _, _ in items])
        fulls = self.render_many([now for _, _, _, now in items])
        answers = self.tokenizer.batch_decode([r for _, _, r, _ in items], skip_special_tokens=False)
        texts, heads = [], []
        for (_, prev_ids, response_ids, _), prev_text, answer, full in zip(items, before, answers, fulls):
            sampled = prev_text + answer
            if not response_ids or response_ids[-1] != self.tokenizer.eos_token_id:
                # an answer cut off at max_new_tokens never matches the closed turn: start afresh
                texts.append(full)
                heads.append([])
            elif not full.startswith(sampled):
                # The template re-renders history differently (e.g. strips thinking): extending is
                # impossible, so this turn starts a fresh prompt. Training then sees a separate sequence.
                warnings.warn("chat template does not extend the previous turn; re-tokenizing the prompt")
                texts.append(full)
                heads.append([])
            else:
                texts.append(full[len(sampled) :])
                heads.append(list(prev_ids) + list(response_ids))
        return [head + ids for head, ids in zip(heads, self.encode_many(texts))]

    def answer_candidates(self, answers: list[str]) -> list[list[int]]:
        """Token sequences for constrained decoding: each answer followed by end-of-sequence."""
        cache = self._candidate_cache
        new = [a for a in dict.fromkeys(answers) if a not in cache]
        if new:  # answers not seen before, tokenized in one call
            for answer, ids in zip(new, self.encode_many(new)):
                cache[answer] = ids + [self._eos]
        return [cache[a] for a in answers]


def _splittable_special_tokens(tokenizer) -> list[str]:
    """The tokenizer's special tokens, longest first, when text can be split at them and its
    pieces tokenized apart (none strips the text around it); else none."""
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    special = [t for t in added.values() if getattr(t, "special", False)]
    if any(t.lstrip or t.rstrip or t.normalized for t in special):
        return []
    return sorted({t.content for t in special}, key=len, reverse=True)
