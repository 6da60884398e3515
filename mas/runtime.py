"""The cyclic garbage collector around a run's long-lived objects.

A training process holds a few hundred thousand objects that live as long as it does (torch,
transformers and their modules, the model, the tokenizer). Python's full collections walk all of
them each time, and a rollout allocates enough to trigger them: in the quickstart's 64-game
rollout they took about a tenth of the engine's time (docs/performance.md). Frozen objects are
exempt from collection; everything allocated later is collected as usual."""
from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Exempt every object alive now from cyclic collection. Call it once setup is done; calling
    it again first gives the collector back what was frozen before (dropped objects are then freed)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def thaw() -> None:
    """Undo `freeze_long_lived` (a process that goes on after its run, such as a test session)."""
    gc.unfreeze()
