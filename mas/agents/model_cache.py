"""The cache folder of built and prepared models, and how a model folder is written into it
(shared by the tiny models and the pretrained ones)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def quiet_transformers() -> None:
    """No per-file progress bars from transformers: mas prints its own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def cache_dir() -> Path:
    return Path(os.environ.get("MAS_CACHE", Path.home() / ".cache" / "mas"))


def save_model_folder(model, tokenizer, target: Path) -> None:
    """Save into a temporary folder beside `target` and rename it: a concurrent or interrupted build
    never leaves half a model, and the first of two concurrent builds wins."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide the model from other users of a shared cache
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process finished the same build first
        shutil.rmtree(tmp, ignore_errors=True)
