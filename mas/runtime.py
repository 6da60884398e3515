"""Process-wide settings that keep a run's time in its own work.

The cyclic garbage collector: a training process holds a few hundred thousand objects that live
as long as it does (torch, transformers and their modules, the model, the tokenizer). Python's
full collections walk all of them each time, and a rollout allocates enough to trigger them: in
the quickstart's 64-game rollout they took about a tenth of the engine's time
(docs/results/performance.md). Frozen objects are exempt from collection; everything allocated later is
collected as usual.

The tokenizers library's thread pool: see `serial_tokenizers`."""
from __future__ import annotations

import gc
import os


def freeze_long_lived() -> None:
    """Exempt every object alive now from cyclic collection. Call it once setup is done; calling
    it again first gives the collector back what was frozen before (dropped objects are then freed)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def thaw() -> None:
    """Undo `freeze_long_lived` (a process that goes on after its run, such as a test session)."""
    gc.unfreeze()


def serial_tokenizers() -> None:
    """Tokenize on the calling thread, unless the user set TOKENIZERS_PARALLELISM. The tokenizers
    library otherwise runs a batch on its own thread pool, whose threads compete for the cores
    with torch's threads (still spinning after each forward): on 2 cores the quickstart's rollout
    took about 7% longer with it (docs/results/performance.md). A rollout's batches are a few dozen short
    prompts, which one thread tokenizes in a few milliseconds at most."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
