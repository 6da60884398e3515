"""Learning-rate schedules over a run's iterations (`policies.<name>.optimizer.schedule`): the factor
the configured learning rate is multiplied by in each iteration. A pure function of the iteration,
so a resumed run continues the schedule where it stopped."""
from __future__ import annotations

import math

SCHEDULES = ("constant", "linear", "cosine")


def lr_factor(schedule: str, iteration: int, iterations: int, *, end: float = 0.1, warmup: int = 0) -> float:
    """The factor for 0-based `iteration` of `iterations`: a linear warmup from 1/warmup to 1 over the
    first `warmup` iterations, then constant 1, or down to `end` at the last iteration (linear or
    cosine)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"optimizer.schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if iteration < warmup:
        return (iteration + 1) / warmup
    if schedule == "constant":
        return 1.0
    t = min((iteration - warmup) / max(iterations - warmup - 1, 1), 1.0)
    if schedule == "linear":
        return 1.0 + (end - 1.0) * t
    return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * t))
