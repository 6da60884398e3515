"""Generation with Hugging Face transformers on CPU or GPU.

Many prompts go through one batched, left-padded forward with a KV cache; sampling, constrained
decoding and the returned log-probs follow `mas.training.logprobs.processed_logprobs`, the same
function the trainer uses, so the first update's importance ratio is exactly 1 up to float error."""
from __future__ import annotations

import glob
import os
import time
from typing import Any

import torch

from mas.agents.backends.base import Backend, Generation, GenerationRequest, SamplingParams
from mas.agents.backends.kv_cache import (KEPT_BYTES, Decoding, KeptTurns, cache_argument, cache_from_layers,
                                          cache_layers, returned_cache, takes_logits_to_keep)
from mas.agents.backends.sampling import (Candidates, allowed_per_row, answer_distribution, branch_points,
                                         sample_tokens)
from mas.training.logprobs import processed_logprobs


MIN_SHARED_PREFIX = 8  # tokens; below this a separate prefix forward costs more than it saves


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


class HFBackend(Backend):
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
        self.kept = KeptTurns(kept_bytes)
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

    @torch.inference_mode()
    def answer_probabilities(self, requests: list[GenerationRequest],
                             samplings: list[SamplingParams]) -> list[list[list[float]]]:
        """Constrained answer probabilities (see `Backend.answer_probabilities`): one forward per
        distinct prompt, then the answer tokens up to each later branch point from its cache; the
        logits at the allowed tokens go through `processed_logprobs` as in `generate`, so the
        figures are those of the sampler itself."""
        self.kept.check_weights(self.model)
        was_training = self.model.training
        self.model.eval()
        branches = [branch_points(r.candidates or []) for r in requests]
        wanted: dict[tuple[int, ...], set] = {}  # prompt -> its branch points, as (prefix, allowed tokens)
        for request, points in zip(requests, branches):
            wanted.setdefault(tuple(request.prompt_ids), set()).update((p, tuple(t)) for p, t in points.items())
        prompts = sorted(wanted, key=len)  # similar lengths share a batch
        allowed_logits: dict[tuple, torch.Tensor] = {}  # (prompt, prefix, allowed) -> their logits
        for start in range(0, len(prompts), self.max_batch_size):
            chunk = prompts[start : start + self.max_batch_size]
            state = self.prefill([list(p) for p in chunk])
            # each prompt once; a branch point after some answer tokens continues from its cache
            by_length: dict[int, list[tuple]] = {}  # prefix length -> (row, prefix, allowed)
            for row, prompt in enumerate(chunk):
                for prefix, allowed in wanted[prompt]:
                    by_length.setdefault(len(prefix), []).append((row, prefix, allowed))
            for length, items in sorted(by_length.items()):
                if length == 0:
                    logits = state.logits
                else:
                    rows = torch.tensor([item[0] for item in items], device=self.device)
                    layers = [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in cache_layers(state.kv)]
                    branch = Decoding(cache_from_layers(layers), None, state.attention[rows], state.next_pos[rows],
                                      state.prompt_width)
                    self.decode_step(branch, torch.tensor([list(item[1]) for item in items]))
                    logits = branch.logits
                logits = logits.float().cpu()
                for i, (row, prefix, allowed) in enumerate(items):
                    allowed_logits[(chunk[row], prefix, allowed)] = logits[i if length else row, list(allowed)]
        if was_training:
            self.model.train()
        out = []
        for sampling in samplings:
            per_request = []
            for request, points in zip(requests, branches):
                # the allowed tokens' logits alone give the same processed log-probs as the whole
                # vocabulary masked to them (the other entries are -inf there and weigh nothing)
                logp = {prefix: processed_logprobs(allowed_logits[(tuple(request.prompt_ids), prefix, tuple(allowed))][None],
                                                   sampling.temperature, top_k=sampling.top_k,
                                                   top_p=sampling.top_p)[0]
                        for prefix, allowed in points.items()}
                per_request.append(answer_distribution(request.candidates or [], points, logp,
                                                       greedy=sampling.temperature <= 0))
            out.append(per_request)
        return out

    def set_weights(self, weights: dict[str, Any] | str) -> None:
        load_weights(self.model, weights)
        self.kept.clear()

    def offload(self) -> None:
        self.model.to("cpu")

    def onload(self) -> None:
        self.model.to(self.device)

    def follow_trainer(self, weights) -> None:
        """Nothing to copy: the worker's trainer updates this very model object."""

    # --- model calls (also replayed alone by `mas bench`'s floor) --------------------------------
    def prefill(self, prompts: list[list[int]], reuse: list[int] | None = None) -> Decoding:
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

    def _forward_after_kept(self, prompts: list[list[int]], kept: list) -> Decoding:
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
        past = Decoding(cache_from_layers(layers), None, attention.to(self.device), lengths.to(self.device))
        return self._forward_prompts([p[length:] for p, length in zip(prompts, lengths.tolist())], past)

    def keep(self, requests: list[GenerationRequest], state: Decoding, tokens: list[list[int]],
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
        for keys, values in cache_layers(state.kv):
            n, heads, _, dim = keys.shape
            picked.append([t.transpose(1, 2).reshape(n * total, heads, dim).index_select(0, flat).split(lengths)
                           for t in (keys, values)])
        for j, row in enumerate(rows):
            self.kept.put(tuple(requests[row].prompt_ids) + tuple(tokens[row][:-1]),
                          [(k[j], v[j]) for k, v in picked])

    def _catch_up(self, state: Decoding | None, requests, pending: list[torch.Tensor],
                  feed_counts: torch.Tensor) -> Decoding:
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

    def _prefix_cache(self, prefix: list[int], copies: int) -> Decoding:
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
            layers = [(k[0].transpose(0, 1), v[0].transpose(0, 1)) for k, v in cache_layers(returned_cache(out))]
            self.kept.put(key, layers)
            self.prefixes = [k for k in self.prefixes if k in self.kept.entries][-7:] + [key]
        batch = [tuple(t.transpose(0, 1).unsqueeze(0).expand(copies, -1, -1, -1) for t in pair) for pair in layers]
        return Decoding(cache_from_layers(batch), None, torch.ones((copies, len(key)), dtype=torch.long, device=self.device),
                         torch.full((copies,), len(key), device=self.device))

    def _forward_prompts(self, prompts: list[list[int]], prefix: Decoding | None) -> Decoding:
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
            extra[cache_argument(self.model)] = prefix.kv
        out = self._run_model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True,
                              **extra)
        return Decoding(returned_cache(out), out.logits[:, -1, :], attention, positions[:, -1] + 1, attention.shape[1])

    def decode_step(self, state: Decoding, tokens: torch.Tensor) -> None:
        """Feed one token per row (`[n]`), or several (`[n, m]`), pad for finished rows, and update
        `state` in place: its logits are then those after each row's last fed token."""
        tokens = tokens.to(self.device)
        if tokens.dim() == 1:
            tokens = tokens.unsqueeze(-1)
        n, m = tokens.shape
        state.attention = torch.cat([state.attention, torch.ones((n, m), dtype=state.attention.dtype, device=self.device)], 1)
        positions = state.next_pos.unsqueeze(-1) + torch.arange(m, device=self.device)
        out = self._run_model(input_ids=tokens, attention_mask=state.attention, position_ids=positions, use_cache=True,
                              **{cache_argument(self.model): state.kv})
        state.cache, state.logits = returned_cache(out), out.logits[:, -1, :]
        state.next_pos = state.next_pos + m

    def prefill_plain(self, prompts: list[list[int]]) -> Decoding:
        """One left-padded forward over all prompts: no sharing, no kept turns (the bench floor)."""
        return self._forward_prompts(prompts, None)

    def _run_model(self, **inputs):
        if takes_logits_to_keep(self.model):
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
    @torch.inference_mode()
    def _generate_batch(
        self, requests: list[GenerationRequest], sampling: SamplingParams, generator: torch.Generator
    ) -> list[Generation]:
        model = self.model
        was_training = model.training
        model.eval()
        n = len(requests)
        constrained = any(r.candidates is not None for r in requests)
        candidates = Candidates(requests, self.eos_id) if constrained else None
        # Tokens whose value is forced (a constrained row with one allowed token) need no model
        # call: their log-prob is 0 whatever the logits. They wait in `pending` and go through the
        # model together when some row must choose (with the prompts, if nothing ran yet).
        state: Decoding | None = None
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
        allowed_ids = allowed_per_row(allowed_steps, requests, lengths.tolist())
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
