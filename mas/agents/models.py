"""Model factory: `tiny-*` models built from scratch by the project, or any Hugging Face folder.

A tiny model is a Llama-architecture causal LM (rotary positions, dropout 0, tied embeddings) with the
project's own BPE tokenizer. It is built deterministically from its spec and a seed, saved as an
ordinary Hugging Face folder under the cache (`$MAS_CACHE`, default `~/.cache/mas`) and reused."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from mas.agents.model_cache import cache_dir, quiet_transformers, save_model_folder
from mas.agents.pretrained import PRETRAINED, is_pretrained, prepare

# transformers' names of the attention kernels a policy may ask for (policies.NAME.attn_implementation)
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")


@dataclass(frozen=True)
class TinySpec:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int = 1024
    max_positions: int = 4096
    init_std: float = 0.02
    kv_heads: int | None = None  # grouped-query attention; None: one key/value head per head


TINY_MODELS: dict[str, TinySpec] = {
    "tiny-xs": TinySpec(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=192),
    "tiny-s": TinySpec(hidden_size=128, num_layers=3, num_heads=8, intermediate_size=384),
    "tiny-m": TinySpec(hidden_size=256, num_layers=6, num_heads=8, intermediate_size=768),
    # SmolLM2-135M's shape (30 layers, 576 wide, 9 heads, 3 key/value heads) with random weights and
    # the tiny tokenizer (1,024 tokens, so ~106M parameters, not 135M): speed and memory checks
    # of a real-size model without the pretrained package (benchmarks/gpu_check.py).
    "smollm2-shape": TinySpec(hidden_size=576, num_layers=30, num_heads=9, intermediate_size=1536, kv_heads=3),
}
_BUILD_VERSION = 1  # bump when the build recipe changes, so caches rebuild


def is_builtin(name: str) -> bool:
    return name in TINY_MODELS or is_pretrained(name)


def available_models() -> list[str]:
    return sorted(TINY_MODELS) + sorted(PRETRAINED)


def resolve(name_or_path: str, seed: int = 0) -> str:
    """A loadable Hugging Face folder (or hub id) for a model name from the config."""
    if name_or_path in TINY_MODELS:
        return str(build_tiny(name_or_path, seed))
    if is_pretrained(name_or_path):
        return str(prepare(name_or_path))
    if name_or_path.startswith("tiny-"):
        raise ValueError(
            f"unknown built-in model {name_or_path!r}; built-in: {', '.join(available_models())}"
        )
    return name_or_path


def build_tiny(name: str, seed: int = 0) -> Path:
    """Build (once) and return the folder of tiny model `name` with weights initialised from `seed`."""
    from mas.agents.corpus import tiny_corpus  # games are only needed when a model is built

    spec = TINY_MODELS[name]
    corpus = tiny_corpus()
    fields = {k: v for k, v in asdict(spec).items() if v is not None}  # kv_heads unset: the old digests hold
    digest = hashlib.sha256(
        json.dumps([fields, seed, _BUILD_VERSION, corpus]).encode()
    ).hexdigest()[:12]
    target = cache_dir() / "models" / f"{name}-seed{seed}-{digest}"
    if (target / "config.json").exists():
        return target

    from mas.agents.tokenizer import train_tokenizer

    quiet_transformers()
    tokenizer = train_tokenizer(corpus, vocab_size=spec.vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.kv_heads or spec.num_heads,
        max_position_embeddings=spec.max_positions,
        initializer_range=spec.init_std,
        attention_dropout=0.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    save_model_folder(model, tokenizer, target)
    return target


def load_tokenizer(path: str):
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ValueError(f"model {path}: the tokenizer needs a pad token distinct from end-of-sequence")
    return tokenizer


def load_model(path: str, dtype: torch.dtype = torch.float32, device: str = "cpu", attn_implementation: str | None = None):
    quiet_transformers()
    options = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **options)
    return model.to(device)
