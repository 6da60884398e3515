"""One way to derive seeds: every RNG stream in a run is a pure function of integer parts
(run seed, iteration, slot, ...), so runs and their resumed twins replay exactly."""
from __future__ import annotations

import numpy as np


def stable_seed(*parts: int) -> int:
    """A 32-bit seed from integer parts, stable across processes and Python versions."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])
