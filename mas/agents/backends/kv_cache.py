"""The KV-cache side of HF generation: decoding state, caches kept between calls (a seat's previous
turn, a shared system prompt), and the small adapters over transformers' cache API."""
from __future__ import annotations

import inspect
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

KEPT_BYTES = 1 << 30  # kept turn caches (KV-cache reuse), least recently used out first


def cache_argument(model) -> str:
    """transformers renamed `past_key_values` to `cache` (5.x); accept both."""
    params = inspect.signature(type(model).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def takes_logits_to_keep(model) -> bool:
    """Whether the model's forward can compute logits for the last position only."""
    kind = type(model)
    if kind not in _LOGITS_TO_KEEP:
        _LOGITS_TO_KEEP[kind] = "logits_to_keep" in inspect.signature(kind.forward).parameters
    return _LOGITS_TO_KEEP[kind]


_LOGITS_TO_KEEP: dict[type, bool] = {}


def returned_cache(output):
    return getattr(output, "cache", None) if hasattr(output, "cache") else output.past_key_values


@dataclass
class Kept:
    length: int
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer, keys and values [length, heads, dim]


class KeptTurns:
    """The KV caches of recent turns by the ids they cover, so that a seat's next prompt, which
    extends its previous prompt and answer, is prefilled from there. Dropped when the weights
    change (an update, new weights), since the cached keys and values were computed with the old."""

    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self.entries: OrderedDict[tuple[int, ...], Kept] = OrderedDict()
        self.bytes = 0
        self.weights_version = None

    def check_weights(self, model) -> None:
        # every in-place change of a parameter (optimizer step, load_state_dict) bumps its version
        version = sum(p._version for p in model.parameters())
        if version != self.weights_version:
            self.clear()
            self.weights_version = version

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0

    def find(self, prompts: list[list[int]], reuse: list[int]) -> list[Kept | None]:
        """Per prompt, the kept turn covering its first `reuse` - 1 ids, if any (the previous
        answer's last token was never fed back, so the kept cache stops one short)."""
        found = []
        for prompt, n in zip(prompts, reuse):
            kept = self.entries.get(tuple(prompt[: n - 1])) if n > 1 else None
            if kept is not None:
                self.entries.move_to_end(tuple(prompt[: n - 1]))
            found.append(kept)
        return found

    def put(self, key: tuple[int, ...], layers) -> None:
        if self.budget <= 0 or key in self.entries:
            return
        self.entries[key] = Kept(len(key), layers)
        self.bytes += sum(k.numel() * k.element_size() * 2 for k, _ in layers)
        while self.bytes > self.budget and self.entries:
            _, dropped = self.entries.popitem(last=False)
            self.bytes -= sum(k.numel() * k.element_size() * 2 for k, _ in dropped.layers)


def cache_layers(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(keys, values) per layer of a transformers cache, `[batch, heads, length, dim]` each."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache))  # transformers 4.x


def cache_from_layers(layers):
    from transformers import DynamicCache

    if hasattr(DynamicCache, "from_legacy_cache"):
        return DynamicCache.from_legacy_cache(tuple(layers))
    return DynamicCache(ddp_cache_data=layers)


@dataclass
class Decoding:
    """What decoding carries from one forward to the next, one row per prompt."""

    cache: Any
    logits: torch.Tensor  # [n, V] at each row's last position
    attention: torch.Tensor  # [n, length so far]
    next_pos: torch.Tensor  # [n] position of the next token

    prompt_width: int = 0  # columns of `attention` that the prefill filled (decoded tokens follow)
    prefill_fed: list[int] | None = None  # per row, sampled tokens that went in with the prompt

    pending_rows: torch.Tensor | None = None  # rows the cache is still to be cut to (see `select`)

    def select(self, rows: torch.Tensor) -> None:
        """Keep (or repeat) these rows. The cache follows when it is next read (`kv`): a batch
        whose answers are complete after this forward never copies it."""
        self.pending_rows = rows if self.pending_rows is None else self.pending_rows[rows]
        self.logits, self.attention, self.next_pos = self.logits[rows], self.attention[rows], self.next_pos[rows]

    @property
    def kv(self):
        """The cache, with the rows of every `select` so far."""
        if self.pending_rows is not None:
            self.cache.batch_select_indices(self.pending_rows)
            self.pending_rows = None
        return self.cache
