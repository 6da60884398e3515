"""Long-lived objects are frozen out of cyclic collection; what is allocated later is still freed."""
from __future__ import annotations

import gc
import os
import weakref

from mas import runtime


class _Node:
    pass


def test_frozen_objects_stay_and_later_garbage_is_collected():
    kept = _Node()
    kept.me = kept  # a cycle alive at the freeze
    try:
        runtime.freeze_long_lived()
        frozen = gc.get_freeze_count()
        assert frozen > 0
        late = _Node()
        late.me = late
        gone = weakref.ref(late)
        del late
        gc.collect()
        assert gone() is None  # allocated after the freeze: collected as usual
        runtime.freeze_long_lived()  # again: what was frozen goes back first, then is frozen anew
        assert abs(gc.get_freeze_count() - frozen) < frozen // 10
    finally:
        runtime.thaw()
    assert gc.get_freeze_count() == 0


def test_tokenizers_run_serially_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    runtime.serial_tokenizers()
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")
    runtime.serial_tokenizers()
    assert os.environ["TOKENIZERS_PARALLELISM"] == "true"
