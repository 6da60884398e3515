"""Chat messages -> prompt token ids, such that a seat's prompt at its next turn extends its previous
prompt + the exact response ids it sampled (DESIGN.md "Contracts"): only the new messages are
tokenized, earlier text never is."""
from __future__ import annotations

import warnings


class PromptTokenizer:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._candidate_cache: dict[str, list[int]] = {}

    def render(self, messages: list[dict], generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, tokenize=False
        )

    def encode_text(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def first(self, messages: list[dict]) -> list[int]:
        return self.encode_text(self.render(messages))

    def extend(
        self,
        prev_messages: list[dict],
        prev_ids: list[int],
        response_ids: list[int],
        messages: list[dict],
    ) -> list[int]:
        """Prompt ids for `messages`, a continuation of `prev_messages` answered by `response_ids`:
        `prev_ids + response_ids + ids of the newly rendered text`."""
        sampled = self.render(prev_messages) + self.tokenizer.decode(response_ids, skip_special_tokens=False)
        full = self.render(messages)
        cut_off = not response_ids or response_ids[-1] != self.tokenizer.eos_token_id
        if cut_off:  # an answer cut off at max_new_tokens never matches the closed turn: start afresh
            return self.encode_text(full)
        if not full.startswith(sampled):
            # The template re-renders history differently (e.g. strips thinking): extending is
            # impossible, so this turn starts a fresh prompt. Training then sees a separate sequence.
            warnings.warn("chat template does not extend the previous turn; re-tokenizing the prompt")
            return self.encode_text(full)
        return list(prev_ids) + list(response_ids) + self.encode_text(full[len(sampled) :])

    def answer_candidates(self, answers: list[str]) -> list[list[int]]:
        """Token sequences for constrained decoding: each answer followed by end-of-sequence."""
        eos = self.tokenizer.eos_token_id
        out = []
        for answer in answers:
            ids = self._candidate_cache.get(answer)
            if ids is None:
                ids = self.encode_text(answer) + [eos]
                self._candidate_cache[answer] = ids
            out.append(ids)
        return out
