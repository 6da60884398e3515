"""The arena's numbers, as pure functions: area under a learning curve, gradient-norm spikes and
the 95% Student t interval of a mean over seeds (docs/arena.md "Metrics")."""
from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

# t_{0.975, df} for df = 1..30 (two-sided 95%); beyond 30 the Cornish-Fisher series below is
# accurate to 1e-4.
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
         2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)
_Z975 = 1.959964


def t_critical(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"t_critical: df must be at least 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_interval(values: Sequence[float]) -> dict:
    """Mean over seeds with its 95% t-interval: mean +- t_{0.975, n-1} * s / sqrt(n), s the sample
    standard deviation (n - 1). With one value the interval is unknown (lo = hi = None)."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    mean = sum(xs) / n
    if n == 1:
        return {"mean": mean, "lo": None, "hi": None, "n": 1}
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_critical(n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": n}


def curve_auc(points: Sequence[tuple[float, float]]) -> float | None:
    """Area under a learning curve by the trapezoid rule, divided by the iteration span, so that it
    is the curve's mean value (a score in [0, 1] for rates). One point: its value; none: None."""
    pts = sorted((float(x), float(y)) for x, y in points)
    if not pts:
        return None
    span = pts[-1][0] - pts[0][0]
    if span <= 0:
        return pts[-1][1]
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in pairwise(pts))
    return area / span


def median(values: Sequence[float]) -> float:
    xs = sorted(values)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def spike_count(norms: Sequence[float], factor: float = 3.0) -> int:
    """Steps whose gradient norm exceeds `factor` times the median of the same series."""
    if not norms:
        return 0
    limit = factor * median(norms)
    return sum(1 for x in norms if x > limit)
