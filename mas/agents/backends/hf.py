"""Generation with Hugging Face transformers on CPU or GPU.

Many prompts go through one batched, left-padded forward with a KV cache; sampling, constrained
decoding and the returned log-probs follow `mas.training.logprobs.processed_logprobs`, the same
function the trainer uses, so the first update's importance ratio is exactly 1 up to float error."""
from __future__ import annotations

import glob
import inspect
import os
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

    # --- decoding -----------------------------------------------------------------------------
    @torch.no_grad()
    def _generate_batch(
        self, requests: list[GenerationRequest], sampling: SamplingParams, generator: torch.Generator
    ) -> list[Generation]:
        model = self.model
        was_training = model.training
        model.eval()
        n = len(requests)
        width = max(len(r.prompt_ids) for r in requests)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((n, width), dtype=torch.long)
        for row, req in enumerate(requests):
            input_ids[row, width - len(req.prompt_ids) :] = torch.tensor(req.prompt_ids)
            attention[row, width - len(req.prompt_ids) :] = 1
        positions = (attention.cumsum(-1) - 1).clamp_min(0)
        input_ids, attention, positions = (t.to(self.device) for t in (input_ids, attention, positions))
        trees = [_PrefixTree(r.candidates) if r.candidates is not None else None for r in requests]
        constrained = any(t is not None for t in trees)

        cache_arg = _cache_argument(model)
        out = model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True)
        cache, logits = _returned_cache(out), out.logits[:, -1, :]
        next_pos = positions[:, -1] + 1
        tokens: list[list[int]] = [[] for _ in range(n)]
        logps: list[list[float]] = [[] for _ in range(n)]
        allowed_ids: list[list[list[int]]] = [[] for _ in range(n)]
        done = [False] * n
        vocab = logits.shape[-1]
        for _ in range(sampling.max_new_tokens):
            allowed = None
            if constrained:
                allowed = torch.zeros((n, vocab), dtype=torch.bool)
                for row, tree in enumerate(trees):
                    if tree is None or done[row]:
                        continue
                    ids = tree.allowed(tokens[row]) or [self.eos_id]
                    allowed_ids[row].append(ids)
                    allowed[row, ids] = True
                allowed = allowed.to(self.device)
            logp = processed_logprobs(
                logits, sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p, allowed=allowed
            )
            if sampling.temperature > 0:
                chosen = torch.multinomial(logp.exp().cpu(), 1, generator=generator).squeeze(-1)
            else:
                chosen = logp.argmax(-1).cpu()
            chosen_logp = logp.gather(-1, chosen.to(self.device).unsqueeze(-1)).squeeze(-1).cpu()
            for row in range(n):
                if done[row]:
                    continue
                tok = int(chosen[row])
                tokens[row].append(tok)
                logps[row].append(float(chosen_logp[row]))
                done[row] = tok == self.eos_id
            if all(done):
                break
            feed = chosen.clone()
            feed[torch.tensor(done)] = self.pad_id
            attention = torch.cat([attention, torch.ones((n, 1), dtype=attention.dtype, device=self.device)], 1)
            out = model(
                input_ids=feed.to(self.device).unsqueeze(-1),
                attention_mask=attention,
                position_ids=next_pos.unsqueeze(-1),
                use_cache=True,
                **{cache_arg: cache},
            )
            cache, logits = _returned_cache(out), out.logits[:, -1, :]
            next_pos = next_pos + 1
        if was_training:
            model.train()
        return [
            Generation(
                token_ids=tokens[row],
                logprobs=logps[row],
                text=self.tokenizer.decode(tokens[row], skip_special_tokens=True),
                finished=done[row],
                allowed_ids=allowed_ids[row] if trees[row] is not None else None,
            )
            for row in range(n)
        ]
