"""Generation with vLLM on GPU machines (optional extra: `pip install -e '.[vllm]'`).

Tested on vLLM's CPU build (`make test-vllm`, tests/agents/test_vllm_engine.py): weight sync. The rest follows vLLM's
documented API (docs.vllm.ai: Sleep Mode, Engine Arguments `logprobs_mode`, `SamplingParams`,
`LLM.collective_rpc`); `logprobs_mode` needs vLLM >= 0.10.2.

Semantics follow the HF backend, so that behaviour and trainer log-probs agree:
- Log-probs are vLLM's *processed* log-probs (`logprobs_mode="processed_logprobs"`): after the
  allowed-token mask, temperature and top-k/top-p, as `mas.training.logprobs.processed_logprobs`
  computes them for the trainer. Greedy (temperature 0): vLLM reports the masked distribution at
  temperature 1 without top-k/top-p, HF with them; they differ only if greedy agents set top_k/top_p.
- Constrained requests are decoded token by token with `SamplingParams.allowed_token_ids` set from
  the candidates' prefix tree (the HF backend's), so sampling, log-probs and `allowed_ids` match HF.
  vLLM's structured-output "choice" decoding constrains text, not token ids: the sampled ids could
  be another tokenization of a candidate and the allowed sets would be unknown to the trainer.
- Seeds: every request (and every constrained step) gets its own seed derived from the call seed.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import tempfile
from collections.abc import Callable
from typing import Any

from mas.agents.backends.base import Backend, Generation, GenerationRequest, SamplingParams
from mas.seeding import stable_seed


class _PrefixTree:
    """Allowed next tokens for one constrained request, given what it has generated so far."""

    def __init__(self, candidates: list[list[int]]):
        self.candidates = [tuple(c) for c in candidates if c]

    def allowed(self, prefix: list[int]) -> list[int]:
        k = len(prefix)
        prefix_t = tuple(prefix)
        return sorted({c[k] for c in self.candidates if len(c) > k and c[:k] == prefix_t})


VLLM_MISSING = "backend 'vllm' needs the vllm extra (GPU machines): pip install -e '.[vllm]'"

# One sampling step of constrained decoding: rows of (context ids, allowed ids, seed) -> (token, log-prob).
StepSampler = Callable[[list[tuple[list[int], list[int], int]]], list[tuple[int, float]]]


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def _import_vllm():
    try:
        import vllm
    except ImportError:
        raise ImportError(VLLM_MISSING) from None
    return vllm


# --- pure helpers (tested without vLLM) -------------------------------------------------------
def sampling_kwargs(sampling: SamplingParams) -> dict[str, Any]:
    """Keywords for `vllm.SamplingParams`, without `max_tokens` and `seed` (set per call)."""
    return {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k if sampling.top_k > 0 else -1,  # -1 = off in every vLLM version
        "logprobs": 0,  # the sampled token's log-prob only
        "detokenize": False,  # text is decoded once from the ids, as in the HF backend
    }


def generation_from_output(output, eos_id: int, decode: Callable[[list[int]], str]) -> Generation:
    """A vLLM `CompletionOutput` (token_ids; logprobs: one {token id: Logprob} per token;
    finish_reason) as a `Generation`."""
    ids = list(output.token_ids)
    if output.logprobs is None or len(output.logprobs) != len(ids):
        raise ValueError("vLLM output lacks one log-prob per token (request logprobs=0)")
    logps = [float(step[tok].logprob) for step, tok in zip(output.logprobs, ids)]
    finished = output.finish_reason == "stop" and bool(ids) and ids[-1] == eos_id
    return Generation(token_ids=ids, logprobs=logps, text=decode(ids), finished=finished)


def constrained_decode(
    requests: list[GenerationRequest],
    seeds: list[int],
    max_new_tokens: int,
    eos_id: int,
    sample_step: StepSampler,
    decode: Callable[[list[int]], str],
) -> list[Generation]:
    """Token-by-token decoding inside each request's candidate prefix tree, as the HF backend does.
    A step with one allowed token needs no sampling: its processed log-prob is exactly 0."""
    trees = [_PrefixTree(r.candidates or []) for r in requests]
    tokens: list[list[int]] = [[] for _ in requests]
    logps: list[list[float]] = [[] for _ in requests]
    allowed: list[list[list[int]]] = [[] for _ in requests]
    done = [False] * len(requests)
    for step in range(max_new_tokens):
        rows, owners = [], []
        for i, req in enumerate(requests):
            if done[i]:
                continue
            ids = trees[i].allowed(tokens[i]) or [eos_id]
            allowed[i].append(ids)
            if len(ids) == 1:
                tokens[i].append(ids[0])
                logps[i].append(0.0)
            else:
                rows.append((list(req.prompt_ids) + tokens[i], ids, stable_seed(seeds[i], step)))
                owners.append(i)
        for i, (tok, logp) in zip(owners, sample_step(rows) if rows else [], strict=True):
            tokens[i].append(int(tok))
            logps[i].append(float(logp))
        done = [d or (bool(t) and t[-1] == eos_id) for d, t in zip(done, tokens)]
        if all(done):
            break
    return [
        Generation(token_ids=t, logprobs=lp, text=decode(t), finished=d, allowed_ids=a)
        for t, lp, d, a in zip(tokens, logps, done, allowed)
    ]


def save_weights(state_dict: dict[str, Any], folder: str) -> str:
    """Tensors in memory as `folder/model.safetensors`, what the engine's in-place reload reads.
    Each tensor is copied to CPU on its own, so tied weights (an embedding shared with the LM head)
    are saved twice rather than refused; the engine skips the tied copy."""
    from safetensors.torch import save_file

    path = os.path.join(folder, "model.safetensors")
    save_file({name: t.detach().to("cpu").contiguous().clone() for name, t in state_dict.items()}, path)
    return path


# --- the backend ------------------------------------------------------------------------------
class VLLMBackend(Backend):
    """One vLLM engine per actor process. `offload` = sleep level 1 (weights to CPU RAM, KV cache
    dropped); `onload` wakes the weights; the KV cache wakes at the next `generate`/`set_weights`."""

    def __init__(
        self,
        model_path: str,
        *,
        tokenizer: str | None = None,
        dtype: str = "bfloat16",
        gpu_memory_utilization: float = 0.5,  # leaves room for a colocated trainer
        seed: int = 0,
        enable_sleep_mode: bool = True,
        max_model_len: int | None = None,
        **engine_kwargs: Any,
    ):
        vllm = _import_vllm()
        kwargs = {"logprobs_mode": "processed_logprobs", **engine_kwargs}
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        self._vllm = vllm
        self.llm = vllm.LLM(
            model=model_path, tokenizer=tokenizer, dtype=dtype, seed=seed,
            gpu_memory_utilization=gpu_memory_utilization, enable_sleep_mode=enable_sleep_mode, **kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.eos_id = self.tokenizer.eos_token_id
        self.sleep_mode = enable_sleep_mode
        self._asleep: set[str] = set()

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingParams, seed: int
    ) -> list[Generation]:
        self._wake("weights", "kv_cache")
        seeds = [stable_seed(seed, i) for i in range(len(requests))]
        results: list[Generation | None] = [None] * len(requests)
        free = [i for i, r in enumerate(requests) if r.candidates is None]
        if free:
            params = [self._params(sampling, sampling.max_new_tokens, seeds[i]) for i in free]
            prompts = [self._vllm.TokensPrompt(prompt_token_ids=list(requests[i].prompt_ids)) for i in free]
            for i, out in zip(free, self.llm.generate(prompts, params, use_tqdm=False)):
                results[i] = generation_from_output(out.outputs[0], self.eos_id, self._decode)
        tied = [i for i, r in enumerate(requests) if r.candidates is not None]
        if tied:
            gens = constrained_decode(
                [requests[i] for i in tied], [seeds[i] for i in tied], sampling.max_new_tokens,
                self.eos_id, lambda rows: self._sample_step(rows, sampling), self._decode,
            )
            for i, gen in zip(tied, gens):
                results[i] = gen
        return results  # type: ignore[return-value]

    def set_weights(self, weights: dict[str, Any] | str) -> None:
        """New weights from a folder of safetensors files or from tensors in memory (written to a
        temporary folder first). The engine reloads them in place and redoes its platform's
        weight processing: loading tensors straight into the model misses that processing (on
        CPU the weights are already repacked)."""
        self._wake("weights")  # weights only: the KV cache is allocated after the push (lower peak)
        if isinstance(weights, str):
            self._reload(weights)
        else:
            with tempfile.TemporaryDirectory(prefix="mas-vllm-weights-") as folder:
                save_weights(weights, folder)
                self._reload(folder)
        self._wake("kv_cache")
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights

    def _reload(self, folder: str) -> None:
        if not glob.glob(os.path.join(folder, "*.safetensors")):
            raise FileNotFoundError(f"no *.safetensors files in {folder}")
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": folder})

    def offload(self) -> None:
        if self.sleep_mode and not self._asleep:
            self.llm.sleep(level=1)
            self._asleep = {"weights", "kv_cache"}

    def onload(self) -> None:
        self._wake("weights")

    # --- internals --------------------------------------------------------------------------
    def _wake(self, *tags: str) -> None:
        for tag in tags:
            if tag in self._asleep:
                self.llm.wake_up(tags=[tag])
                self._asleep.discard(tag)
                if tag == "kv_cache":
                    self.llm.reset_prefix_cache()  # the woken cache holds no valid blocks

    def _params(self, sampling: SamplingParams, max_tokens: int, seed: int, allowed=None):
        return self._vllm.SamplingParams(
            **sampling_kwargs(sampling), max_tokens=max_tokens, seed=seed, allowed_token_ids=allowed
        )

    def _sample_step(self, rows, sampling: SamplingParams) -> list[tuple[int, float]]:
        prompts = [self._vllm.TokensPrompt(prompt_token_ids=ctx) for ctx, _, _ in rows]
        params = [self._params(sampling, 1, s, allowed=ids) for _, ids, s in rows]
        picked = []
        for out in self.llm.generate(prompts, params, use_tqdm=False):
            tok = out.outputs[0].token_ids[0]
            picked.append((tok, float(out.outputs[0].logprobs[0][tok].logprob)))
        return picked

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)
