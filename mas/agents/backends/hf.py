"""Generation with Hugging Face transformers on CPU or GPU.

Many prompts go through one batched, left-padded forward with a KV cache; sampling, constrained
decoding and the returned log-probs follow `mas.training.logprobs.processed_logprobs`, the same
function the trainer uses, so the first update's importance ratio is exactly 1 up to float error."""
from __future__ import annotations

import glob
import inspect
import os
from dataclasses import dataclass
from typing import Any

import torch

from mas.agents.backends.base import Generation, GenerationRequest, SamplingParams
from mas.training.logprobs import processed_logprobs


def _cache_argument(model) -> str:
    """transformers renamed `past_key_values` to `cache` (5.x); accept both."""
    params = inspect.signature(type(model).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _returned_cache(output):
    return getattr(output, "cache", None) if hasattr(output, "cache") else output.past_key_values


def load_weights(model, weights: dict[str, Any] | str) -> None:
    """A state dict, or the safetensors files of a Hugging Face folder, into `model` in place
    (tied weights are absent from saved files, hence not strict)."""
    if isinstance(weights, str):
        from safetensors.torch import load_file

        state: dict[str, Any] = {}
        for file in sorted(glob.glob(os.path.join(weights, "*.safetensors"))):
            state.update(load_file(file))
        weights = state
    model.load_state_dict(weights, strict=False)


def sample_tokens(logp: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One token per row of log-probs `[N, V]` by inverse-CDF sampling: one uniform draw per row
    from the CPU `generator` (reproducible on any device), far cheaper than torch.multinomial."""
    probs = logp.exp().double()
    cdf = probs.cumsum(-1)
    draw = torch.rand((logp.shape[0], 1), generator=generator, dtype=torch.float64).to(cdf.device)
    chosen = torch.searchsorted(cdf, draw * cdf[:, -1:], right=True).squeeze(-1).clamp_max(logp.shape[-1] - 1)
    # a draw rounded up to the total lands past the last token with mass: take that token instead
    unlikely = probs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1) == 0
    if unlikely.any():
        last = logp.shape[-1] - 1 - (probs > 0).flip(-1).int().argmax(-1)
        chosen = torch.where(unlikely, last, chosen)
    return chosen


class _PrefixTree:
    """Allowed next tokens for one constrained request, given what it has generated so far."""

    def __init__(self, candidates: list[list[int]]):
        self.candidates = [tuple(c) for c in candidates if c]

    def allowed(self, prefix: list[int]) -> list[int]:
        k = len(prefix)
        prefix_t = tuple(prefix)
        return sorted({c[k] for c in self.candidates if len(c) > k and c[:k] == prefix_t})


class HFBackend:
    """Backend over a transformers causal LM. The model object may be shared with a trainer in the
    same process, in which case new weights are visible at once (no copy)."""

    def __init__(self, model, tokenizer, *, device: str = "cpu", max_batch_size: int = 256):
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.max_batch_size = max_batch_size
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id

    # --- protocol -----------------------------------------------------------------------------
    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingParams, seed: int
    ) -> list[Generation]:
        generator = torch.Generator(device="cpu").manual_seed(int(seed) & 0x7FFF_FFFF_FFFF_FFFF)
        # Length bucketing: similar prompt lengths share a batch, so little compute goes to padding.
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_ids))
        results: list[Generation | None] = [None] * len(requests)
        for start in range(0, len(order), self.max_batch_size):
            chunk = order[start : start + self.max_batch_size]
            outputs = self._generate_batch([requests[i] for i in chunk], sampling, generator)
            for i, out in zip(chunk, outputs):
                results[i] = out
        return results  # type: ignore[return-value]

    def set_weights(self, weights: dict[str, Any] | str) -> None:
        load_weights(self.model, weights)

    def offload(self) -> None:
        self.model.to("cpu")

    def onload(self) -> None:
        self.model.to(self.device)

    # --- model calls (also replayed alone by `mas bench`'s floor) --------------------------------
    def prefill(self, prompts: list[list[int]]) -> _Decoding:
        """Run the prompts through the model once: identical prompts are computed once, and a
        prefix shared by all of them (a system prompt) once for the whole batch."""
        unique: dict[tuple[int, ...], int] = {}
        row_of = [unique.setdefault(tuple(p), len(unique)) for p in prompts]
        distinct = [list(p) for p in unique]
        shared = len(os.path.commonprefix(distinct)) if len(distinct) > 1 else 0
        shared = min(shared, min(len(p) for p in distinct) - 1)  # every row keeps a token to predict from
        if shared >= MIN_SHARED_PREFIX:
            state = self._forward_prompts([p[shared:] for p in distinct], self._prefix_cache(distinct[0][:shared], len(distinct)))
        else:
            state = self._forward_prompts(distinct, None)
        if len(distinct) < len(prompts):
            state.select(torch.tensor(row_of, device=self.device))
        return state

    def _prefix_cache(self, prefix: list[int], copies: int) -> _Decoding:
        ids = torch.tensor([prefix], device=self.device)
        out = self.model(input_ids=ids, use_cache=True)
        state = _Decoding(_returned_cache(out), out.logits[:, -1, :], torch.ones_like(ids), torch.tensor([len(prefix)], device=self.device))
        state.select(torch.zeros(copies, dtype=torch.long, device=self.device))
        return state

    def _forward_prompts(self, prompts: list[list[int]], prefix: _Decoding | None) -> _Decoding:
        """Left-padded prompts (after `prefix`'s cache when given: the padding then sits between
        the prefix and each prompt, masked, with positions continuing the prefix)."""
        n, width = len(prompts), max(len(p) for p in prompts)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((n, width), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        start = prefix.next_pos.unsqueeze(-1) if prefix is not None else 0
        positions = (attention.cumsum(-1) - 1).clamp_min(0) + start
        extra = {}
        if prefix is not None:
            attention = torch.cat([prefix.attention, attention], 1)
            extra[_cache_argument(self.model)] = prefix.cache
        out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True, **extra)
        return _Decoding(_returned_cache(out), out.logits[:, -1, :], attention, positions[:, -1] + 1)

    def decode_step(self, state: _Decoding, tokens: torch.Tensor) -> None:
        """Feed one token per row (pad for finished rows) and update `state` in place."""
        n = tokens.shape[0]
        state.attention = torch.cat([state.attention, torch.ones((n, 1), dtype=state.attention.dtype, device=self.device)], 1)
        out = self.model(input_ids=tokens.to(self.device).unsqueeze(-1), attention_mask=state.attention,
                         position_ids=state.next_pos.unsqueeze(-1), use_cache=True, **{_cache_argument(self.model): state.cache})
        state.cache, state.logits = _returned_cache(out), out.logits[:, -1, :]
        state.next_pos = state.next_pos + 1

    # --- decoding -----------------------------------------------------------------------------
    @torch.no_grad()
    def _generate_batch(
        self, requests: list[GenerationRequest], sampling: SamplingParams, generator: torch.Generator
    ) -> list[Generation]:
        model = self.model
        was_training = model.training
        model.eval()
        n = len(requests)
        trees = [_PrefixTree(r.candidates) if r.candidates is not None else None for r in requests]
        constrained = any(t is not None for t in trees)
        state = self.prefill([r.prompt_ids for r in requests])
        tokens: list[list[int]] = [[] for _ in range(n)]
        logps: list[list[float]] = [[] for _ in range(n)]
        allowed_ids: list[list[list[int]]] = [[] for _ in range(n)]
        done = [False] * n
        vocab = state.logits.shape[-1]
        for step in range(sampling.max_new_tokens):
            allowed = None
            if constrained:
                rows, cols = [], []
                for row, tree in enumerate(trees):
                    if tree is None or done[row]:
                        continue
                    ids = tree.allowed(tokens[row]) or [self.eos_id]
                    allowed_ids[row].append(ids)
                    rows += [row] * len(ids)
                    cols += ids
                allowed = torch.zeros((n, vocab), dtype=torch.bool)
                allowed[rows, cols] = True
                allowed = allowed.to(self.device)
            logp = processed_logprobs(
                state.logits, sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p, allowed=allowed
            )
            chosen = sample_tokens(logp, generator) if sampling.temperature > 0 else logp.argmax(-1)
            chosen_logp = logp.gather(-1, chosen.unsqueeze(-1)).squeeze(-1).tolist()
            chosen = chosen.cpu()
            for row, tok in enumerate(chosen.tolist()):
                if done[row]:
                    continue
                tokens[row].append(tok)
                logps[row].append(chosen_logp[row])
                done[row] = tok == self.eos_id
            if all(done) or step == sampling.max_new_tokens - 1:
                break  # no forward for a token that will never be fed back
            feed = chosen.clone()
            feed[torch.tensor(done)] = self.pad_id
            self.decode_step(state, feed)
        if was_training:
            model.train()
        texts = self.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return [
            Generation(
                token_ids=tokens[row],
                logprobs=logps[row],
                text=texts[row],
                finished=done[row],
                allowed_ids=allowed_ids[row] if trees[row] is not None else None,
            )
            for row in range(n)
        ]


MIN_SHARED_PREFIX = 8  # tokens; below this a separate prefix forward costs more than it saves


@dataclass
class _Decoding:
    """What decoding carries from one forward to the next, one row per prompt."""

    cache: Any
    logits: torch.Tensor  # [n, V] at each row's last position
    attention: torch.Tensor  # [n, length so far]
    next_pos: torch.Tensor  # [n] position of the next token

    def select(self, rows: torch.Tensor) -> None:
        """Keep (or repeat) these rows: the cache and everything beside it."""
        self.cache.batch_select_indices(rows)
        self.logits, self.attention, self.next_pos = self.logits[rows], self.attention[rows], self.next_pos[rows]
