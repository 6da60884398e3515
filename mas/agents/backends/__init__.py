"""Generation backends, chosen by name (`policies.NAME.backend`): `hf` (transformers, CPU or GPU)
and `vllm` (optional extra). Each is built from the same options and takes what it needs."""
from __future__ import annotations

from typing import Any, Callable


def _hf(*, model, tokenizer, device: str, max_batch_size: int, **_: Any):
    from mas.agents.backends.hf import HFBackend

    # generates with the worker's own model object, so updates need no weight copy
    return HFBackend(model, tokenizer, device=device, max_batch_size=max_batch_size)


def _vllm(*, model_path: str, dtype: str, seed: int, **_: Any):
    from mas.agents.backends.vllm import VLLMBackend

    # vLLM holds its own copy of the weights; the worker pushes new ones after each update
    return VLLMBackend(model_path, dtype=dtype, seed=seed)


BACKENDS: dict[str, Callable[..., Any]] = {"hf": _hf, "vllm": _vllm}


def make_backend(name: str, *, model, tokenizer, model_path: str, device: str, dtype: str, seed: int,
                 max_batch_size: int):
    """The backend `name` for a worker's model (`model`, `tokenizer`, loaded from `model_path`)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend '{name}'; allowed: {', '.join(BACKENDS)}")
    return BACKENDS[name](model=model, tokenizer=tokenizer, model_path=model_path, device=device, dtype=dtype,
                          seed=seed, max_batch_size=max_batch_size)
