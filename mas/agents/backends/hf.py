"""Generation with Hugging Face transformers on CPU or GPU.

Many prompts go through one batched, left-padded forward with a KV cache; sampling, constrained
decoding and the returned log-probs follow `mas.training.logprobs.processed_logprobs`, the same
function the trainer uses, so the first update's importance ratio is exactly 1 up to float error."""
from __future__ import annotations

import glob
import inspect
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

from mas.agents.backends.base import Generation, GenerationRequest, SamplingParams
from mas.training.logprobs import processed_logprobs


MIN_SHARED_PREFIX = 8  # tokens; below this a separate prefix forward costs more than it saves
KEPT_BYTES = 1 << 30  # kept turn caches (KV-cache reuse), least recently used out first


def _cache_argument(model) -> str:
    """transformers renamed `past_key_values` to `cache` (5.x); accept both."""
    params = inspect.signature(type(model).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _takes_logits_to_keep(model) -> bool:
    """Whether the model's forward can compute logits for the last position only."""
    kind = type(model)
    if kind not in _LOGITS_TO_KEEP:
        _LOGITS_TO_KEEP[kind] = "logits_to_keep" in inspect.signature(kind.forward).parameters
    return _LOGITS_TO_KEEP[kind]


_LOGITS_TO_KEEP: dict[type, bool] = {}


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


class _Candidates:
    """The answers constrained rows may give, as tensors: which tokens may come next is one
    gather over the candidates still consistent with what each row has sampled."""

    def __init__(self, requests: list[GenerationRequest], eos_id: int):
        lists = [[c for c in (r.candidates or []) if c] for r in requests]
        width = max([1, *map(len, lists)])
        depth = max([1, *(len(c) for cs in lists for c in cs)])
        padded = [[c + [-1] * (depth - len(c)) for c in cs] + [[-1] * depth] * (width - len(cs)) for cs in lists]
        self.tokens = torch.tensor(padded, dtype=torch.long).reshape(len(requests), width, depth)
        self.rows = torch.tensor([r.candidates is not None for r in requests])  # constrained rows
        self.alive = self.tokens[:, :, 0] >= 0  # candidates consistent with the tokens so far
        self.eos_id = eos_id

    def allowed(self, step: int, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, token) pairs allowed now for the active constrained rows, sorted; a row whose
        candidates are all exhausted may only end."""
        nxt = self.tokens[:, :, step] if step < self.tokens.shape[2] else torch.full(self.alive.shape, -1)
        ok = self.alive & (nxt >= 0) & (active & self.rows).unsqueeze(-1)
        rows, cand = ok.nonzero(as_tuple=True)
        tokens = nxt[rows, cand]
        stuck = (active & self.rows & ~ok.any(-1)).nonzero(as_tuple=True)[0]
        if len(stuck):
            rows, tokens = torch.cat([rows, stuck]), torch.cat([tokens, torch.full_like(stuck, self.eos_id)])
        span = int(tokens.max()) + 1 if len(tokens) else 1
        pairs = torch.unique(rows * span + tokens)  # sorted by row, then token
        return pairs // span, pairs % span

    def advance(self, step: int, chosen: torch.Tensor) -> None:
        if step < self.tokens.shape[2]:
            self.alive &= self.tokens[:, :, step] == chosen.unsqueeze(-1)
        else:
            self.alive[:] = False


class HFBackend:
    """Backend over a transformers causal LM. The model object may be shared with a trainer in the
    same process, in which case new weights are visible at once (no copy)."""

    def __init__(self, model, tokenizer, *, device: str = "cpu", max_batch_size: int = 256,
                 kept_bytes: int = KEPT_BYTES):
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.max_batch_size = max_batch_size
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id
        self.kept = _KeptTurns(kept_bytes)
        self.prefixes: list[tuple[int, ...]] = []  # keys of shared prefixes in `kept`, newest last
        self.model_seconds = 0.0  # time inside model forwards, counted while `count_model_time`
        self.count_model_time = False

    # --- protocol -----------------------------------------------------------------------------
    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingParams, seed: int
    ) -> list[Generation]:
        generator = torch.Generator(device="cpu").manual_seed(int(seed) & 0x7FFF_FFFF_FFFF_FFFF)
        self.kept.check_weights(self.model)
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
        self.kept.clear()

    def offload(self) -> None:
        self.model.to("cpu")

    def onload(self) -> None:
        self.model.to(self.device)

    # --- model calls (also replayed alone by `mas bench`'s floor) --------------------------------
    def prefill(self, prompts: list[list[int]], reuse: list[int] | None = None) -> _Decoding:
        """Run the prompts through the model once. Where a prompt extends a turn whose cache was
        kept (`reuse`, see GenerationRequest), only its new ids are computed; otherwise identical
        prompts are computed once, and a prefix shared by all of them (a system prompt) once."""
        kept = self.kept.find(prompts, reuse) if reuse and any(reuse) else None
        if kept is not None and any(k is not None for k in kept):
            return self._forward_after_kept(prompts, kept)
        unique: dict[tuple[int, ...], int] = {}
        row_of = [unique.setdefault(tuple(p), len(unique)) for p in prompts]
        distinct = [list(p) for p in unique]
        shared = len(os.path.commonprefix(distinct)) if len(distinct) > 1 else 0
        shared = min(shared, min(len(p) for p in distinct) - 1)  # every row keeps a token to predict from
        if shared >= MIN_SHARED_PREFIX:
            past = self._prefix_cache(distinct[0][:shared], len(distinct))
            state = self._forward_prompts([p[past.attention.shape[1] :] for p in distinct], past)
        else:
            state = self._forward_prompts(distinct, None)
        if len(distinct) < len(prompts):
            state.select(torch.tensor(row_of, device=self.device))
        return state

    def _forward_after_kept(self, prompts: list[list[int]], kept: list) -> _Decoding:
        """Each row's kept cache (none: empty), left-padded to a common width, then its new ids."""
        lengths = torch.tensor([k.length if k is not None else 0 for k in kept])
        width, n = int(lengths.max()), len(prompts)
        attention = (torch.arange(width) >= width - lengths[:, None]).long()  # kept columns, right-aligned
        rows, cols = attention.nonzero(as_tuple=True)  # row-major: each row's kept columns in order
        slots = rows * width + cols
        present = [k for k in kept if k is not None]
        layers = []
        for index in range(len(present[0].layers)):
            # kept entries are [length, heads, dim]: one copy of all of them into the padded cache
            keys = torch.cat([k.layers[index][0] for k in present])
            values = torch.cat([k.layers[index][1] for k in present])
            heads, dim = keys.shape[1:]
            k_all = keys.new_zeros((n * width, heads, dim)).index_copy_(0, slots, keys)
            v_all = values.new_zeros((n * width, heads, dim)).index_copy_(0, slots, values)
            layers.append(tuple(t.reshape(n, width, heads, dim).transpose(1, 2).to(self.device) for t in (k_all, v_all)))
        past = _Decoding(_cache_from_layers(layers), None, attention.to(self.device), lengths.to(self.device))
        return self._forward_prompts([p[length:] for p, length in zip(prompts, lengths.tolist())], past)

    def keep(self, requests: list[GenerationRequest], state: _Decoding, tokens: list[list[int]],
             finished: list[bool]) -> None:
        """Keep the cache of each finished row that asked for it, under the ids it covers: the
        prompt and every sampled token but the last (which was never fed back)."""
        rows = [r for r, req in enumerate(requests) if req.keep and finished[r] and tokens[r]]
        if not rows:
            return
        # A row's columns: those the prefill filled with attention 1, then its fed tokens; taken
        # for all kept rows by one index_select per layer, row-major, then split per row.
        total, width = state.attention.shape[1], state.prompt_width
        chosen = torch.tensor(rows, device=self.device)
        before = state.prefill_fed or [0] * len(requests)  # fed with the prompt, inside the prefill width
        fed = torch.tensor([len(tokens[r]) - 1 - before[r] for r in rows], device=self.device)
        mask = torch.zeros((len(rows), total), dtype=torch.bool, device=self.device)
        mask[:, :width] = state.attention[chosen, :width] == 1
        mask[:, width:] = torch.arange(total - width, device=self.device) < fed[:, None]
        j, col = mask.nonzero(as_tuple=True)
        flat = chosen[j] * total + col
        lengths = mask.sum(1).tolist()
        picked = []
        for keys, values in _cache_layers(state.cache):
            n, heads, _, dim = keys.shape
            picked.append([t.transpose(1, 2).reshape(n * total, heads, dim).index_select(0, flat).split(lengths)
                           for t in (keys, values)])
        for j, row in enumerate(rows):
            self.kept.put(tuple(requests[row].prompt_ids) + tuple(tokens[row][:-1]),
                          [(k[j], v[j]) for k, v in picked])

    def _catch_up(self, state: _Decoding | None, requests, pending: list[torch.Tensor],
                  feed_counts: torch.Tensor) -> _Decoding:
        """`state` after the pending tokens: one forward over the pending columns, or, if the
        model has not run yet, the prefill of each prompt followed by the first `feed_counts`
        pending tokens of its row (a row that has ended feeds no token after its last)."""
        if state is None:
            columns = torch.stack(pending, 1).tolist() if pending else [[] for _ in requests]
            counts = feed_counts.tolist()
            prompts = [r.prompt_ids + row[:k] for r, row, k in zip(requests, columns, counts)]
            state = self.prefill(prompts, [r.reuse for r in requests])
            state.prefill_fed = counts
            return state
        if pending:
            self.decode_step(state, torch.stack(pending, 1))
        return state

    def _prefix_cache(self, prefix: list[int], copies: int) -> _Decoding:
        """The cache of a prefix all rows share, for `copies` rows. A prefix computed before under
        the same weights (the system prompt, round after round) is reused, also when this batch
        shares more than it: the rest then goes with each row's own ids."""
        known = [key for key in self.prefixes if len(key) >= MIN_SHARED_PREFIX and tuple(prefix[: len(key)]) == key
                 and self.kept.entries.get(key) is not None]
        if known:
            key = max(known, key=len)
            layers = self.kept.entries[key].layers
        else:
            key = tuple(prefix)
            out = self._run_model(input_ids=torch.tensor([prefix], device=self.device), use_cache=True)
            layers = [(k[0].transpose(0, 1), v[0].transpose(0, 1)) for k, v in _cache_layers(_returned_cache(out))]
            self.kept.put(key, layers)
            self.prefixes = [k for k in self.prefixes if k in self.kept.entries][-7:] + [key]
        batch = [tuple(t.transpose(0, 1).unsqueeze(0).expand(copies, -1, -1, -1) for t in pair) for pair in layers]
        return _Decoding(_cache_from_layers(batch), None, torch.ones((copies, len(key)), dtype=torch.long, device=self.device),
                         torch.full((copies,), len(key), device=self.device))

    def _forward_prompts(self, prompts: list[list[int]], prefix: _Decoding | None) -> _Decoding:
        """Left-padded prompts (after `prefix`'s cache when given: the padding then sits between
        the prefix and each prompt, masked, with positions continuing the prefix)."""
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([[self.pad_id] * (width - len(p)) + list(p) for p in prompts], device=self.device)
        lengths = torch.tensor([len(p) for p in prompts], device=self.device)
        attention = (torch.arange(width, device=self.device) >= width - lengths[:, None]).long()
        start = prefix.next_pos.unsqueeze(-1) if prefix is not None else 0
        positions = (attention.cumsum(-1) - 1).clamp_min(0) + start
        extra = {}
        if prefix is not None:
            attention = torch.cat([prefix.attention, attention], 1)
            extra[_cache_argument(self.model)] = prefix.cache
        out = self._run_model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True,
                              **extra)
        return _Decoding(_returned_cache(out), out.logits[:, -1, :], attention, positions[:, -1] + 1, attention.shape[1])

    def decode_step(self, state: _Decoding, tokens: torch.Tensor) -> None:
        """Feed one token per row (`[n]`), or several (`[n, m]`), pad for finished rows, and update
        `state` in place: its logits are then those after each row's last fed token."""
        tokens = tokens.to(self.device)
        if tokens.dim() == 1:
            tokens = tokens.unsqueeze(-1)
        n, m = tokens.shape
        state.attention = torch.cat([state.attention, torch.ones((n, m), dtype=state.attention.dtype, device=self.device)], 1)
        positions = state.next_pos.unsqueeze(-1) + torch.arange(m, device=self.device)
        out = self._run_model(input_ids=tokens, attention_mask=state.attention, position_ids=positions, use_cache=True,
                              **{_cache_argument(self.model): state.cache})
        state.cache, state.logits = _returned_cache(out), out.logits[:, -1, :]
        state.next_pos = state.next_pos + m

    def prefill_plain(self, prompts: list[list[int]]) -> _Decoding:
        """One left-padded forward over all prompts: no sharing, no kept turns (the bench floor)."""
        return self._forward_prompts(prompts, None)

    def _run_model(self, **inputs):
        if _takes_logits_to_keep(self.model):
            inputs["logits_to_keep"] = 1  # only the last position's logits are ever read
        if not self.count_model_time:
            return self.model(**inputs)
        start = time.perf_counter()
        out = self.model(**inputs)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.model_seconds += time.perf_counter() - start
        return out

    # --- decoding -----------------------------------------------------------------------------
    @torch.no_grad()
    def _generate_batch(
        self, requests: list[GenerationRequest], sampling: SamplingParams, generator: torch.Generator
    ) -> list[Generation]:
        model = self.model
        was_training = model.training
        model.eval()
        n = len(requests)
        constrained = any(r.candidates is not None for r in requests)
        candidates = _Candidates(requests, self.eos_id) if constrained else None
        # Tokens whose value is forced (a constrained row with one allowed token) need no model
        # call: their log-prob is 0 whatever the logits. They wait in `pending` and go through the
        # model together when some row must choose (with the prompts, if nothing ran yet).
        state: _Decoding | None = None
        pending: list[torch.Tensor] = []
        tokens = torch.full((n, sampling.max_new_tokens), self.pad_id, dtype=torch.long)
        logps = torch.zeros((n, sampling.max_new_tokens))
        lengths = torch.zeros(n, dtype=torch.long)
        done = torch.zeros(n, dtype=torch.bool)
        allowed_steps: list[tuple[list[int], list[int]]] = []  # per step, the allowed (row, token) pairs
        for step in range(sampling.max_new_tokens):
            choosing, forced = ~done, None
            if candidates is not None:
                rows, ids = candidates.allowed(step, ~done)
                allowed_steps.append((rows.tolist(), ids.tolist()))
                single = torch.bincount(rows, minlength=n) == 1
                forced = torch.full((n,), self.pad_id, dtype=torch.long)
                forced[rows[single[rows]]] = ids[single[rows]]
                choosing = choosing & ~(candidates.rows & single)
            if bool(choosing.any()):
                state = self._catch_up(state, requests, pending, lengths - done.long())
                pending = []
                allowed = None
                if candidates is not None:
                    allowed = torch.zeros(state.logits.shape, dtype=torch.bool)
                    allowed[rows, ids] = True
                    allowed = allowed.to(self.device)
                logp = processed_logprobs(
                    state.logits, sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p, allowed=allowed
                )
                chosen = sample_tokens(logp, generator) if sampling.temperature > 0 else logp.argmax(-1)
                chosen_logp = logp.gather(-1, chosen.unsqueeze(-1)).squeeze(-1).cpu()
                chosen = chosen.cpu()
            else:
                chosen, chosen_logp = forced, torch.zeros(n)
            active = ~done
            tokens[active, step] = chosen[active]
            logps[active, step] = chosen_logp[active]
            lengths += active.long()
            done |= active & (chosen == self.eos_id)
            if candidates is not None:
                candidates.advance(step, chosen)
            if bool(done.all()) or step == sampling.max_new_tokens - 1:
                break  # no forward for a token that will never be fed back
            pending.append(torch.where(done, self.pad_id, chosen))
        if was_training:
            model.train()
        token_lists = [row[:k] for row, k in zip(tokens.tolist(), lengths.tolist())]
        logp_lists = [row[:k] for row, k in zip(logps.tolist(), lengths.tolist())]
        allowed_ids = _allowed_per_row(allowed_steps, requests, lengths.tolist())
        texts = _decode_many(self.tokenizer, token_lists)
        finished = done.tolist()
        if any(r.keep for r in requests) and any(finished):
            # a kept turn covers every token but the last: run the forced ones still pending
            self.keep(requests, self._catch_up(state, requests, pending, lengths - 1), token_lists, finished)
        return [
            Generation(token_ids=token_lists[row], logprobs=logp_lists[row], text=texts[row], finished=finished[row],
                       allowed_ids=allowed_ids[row])
            for row in range(n)
        ]


def _decode_many(tokenizer, token_lists: list[list[int]]) -> list[str]:
    """`batch_decode(..., skip_special_tokens=True)`, straight from the Rust tokenizer where that
    gives the same text (no clean-up of spaces configured)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or getattr(tokenizer, "clean_up_tokenization_spaces", True):
        return tokenizer.batch_decode(token_lists, skip_special_tokens=True)
    return backend.decode_batch(token_lists, skip_special_tokens=True)


def _allowed_per_row(steps, requests, lengths) -> list[list[list[int]] | None]:
    """Per constrained row, the allowed ids at each of its sampled tokens (None: free text)."""
    out: list[list[list[int]] | None] = [
        [[] for _ in range(k)] if r.candidates is not None else None for r, k in zip(requests, lengths)
    ]
    for step, (rows, ids) in enumerate(steps):
        for row, token in zip(rows, ids):
            out[row][step].append(token)
    return out




@dataclass
class _Kept:
    length: int
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer, keys and values [length, heads, dim]


class _KeptTurns:
    """The KV caches of recent turns by the ids they cover, so that a seat's next prompt, which
    extends its previous prompt and answer, is prefilled from there. Dropped when the weights
    change (an update, new weights), since the cached keys and values were computed with the old."""

    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self.entries: OrderedDict[tuple[int, ...], _Kept] = OrderedDict()
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

    def find(self, prompts: list[list[int]], reuse: list[int]) -> list[_Kept | None]:
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
        self.entries[key] = _Kept(len(key), layers)
        self.bytes += sum(k.numel() * k.element_size() * 2 for k, _ in layers)
        while self.bytes > self.budget and self.entries:
            _, dropped = self.entries.popitem(last=False)
            self.bytes -= sum(k.numel() * k.element_size() * 2 for k, _ in dropped.layers)


def _cache_layers(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(keys, values) per layer of a transformers cache, `[batch, heads, length, dim]` each."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache))  # transformers 4.x


def _cache_from_layers(layers):
    from transformers import DynamicCache

    if hasattr(DynamicCache, "from_legacy_cache"):
        return DynamicCache.from_legacy_cache(tuple(layers))
    return DynamicCache(ddp_cache_data=layers)


@dataclass
class _Decoding:
    """What decoding carries from one forward to the next, one row per prompt."""

    cache: Any
    logits: torch.Tensor  # [n, V] at each row's last position
    attention: torch.Tensor  # [n, length so far]
    next_pos: torch.Tensor  # [n] position of the next token

    prompt_width: int = 0  # columns of `attention` that the prefill filled (decoded tokens follow)
    prefill_fed: list[int] | None = None  # per row, sampled tokens that went in with the prompt

    def select(self, rows: torch.Tensor) -> None:
        """Keep (or repeat) these rows: the cache and everything beside it."""
        self.cache.batch_select_indices(rows)
        self.logits, self.attention, self.next_pos = self.logits[rows], self.attention[rows], self.next_pos[rows]
