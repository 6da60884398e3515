"""avg@k and unbiased pass@k over per-item sample results (docs/algorithms.md, "Reasoning evaluation").
Pure functions over records; no I/O."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one item with n samples, c of them correct (Chen et al. 2021, "Evaluating
    Large Language Models Trained on Code", arXiv:2107.03374): 1 - C(n-c, k) / C(n, k)."""
    if not (0 <= c <= n) or not (1 <= k <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0  # every k-subset holds a correct sample
    return 1.0 - comb(n - c, k) / comb(n, k)


def report_ks(max_samples: int) -> list[int]:
    """k = 1, 2, 4, ... up to `max_samples`, and `max_samples` itself."""
    ks, k = [], 1
    while k <= max_samples:
        ks.append(k)
        k *= 2
    if max_samples >= 1 and ks[-1] != max_samples:
        ks.append(max_samples)
    return ks


@dataclass
class Report:
    per_item: list[dict]  # {"index", "gold", "samples", "correct": [bool], "extracted": [str|None], "timed_out": [bool]}
    avg_at_k: float  # mean over items of each item's accuracy over its samples
    pass_at_k: dict[int, float]  # over the items with at least k samples
    pass_at_k_excluded: dict[int, int]  # items left out of pass@k for having fewer than k samples
    no_answer: int  # responses with no extractable answer
    items: int  # items scored (with at least one response)
    responses: int
    samples_per_item: dict[int, int]  # histogram: samples -> number of items
    timed_out: int = 0  # responses whose scoring ran past the timeout (counted wrong)
    missing: int = 0  # items of the benchmark with no response at all (not scored)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_items(cls, per_item: list[dict], missing: int = 0) -> Report:
        """Aggregate per-item results. Items with no samples must not be passed (count them in `missing`)."""
        if any(not r["correct"] for r in per_item):
            raise ValueError("every scored item needs at least one sample")
        counts = [(len(r["correct"]), sum(map(bool, r["correct"]))) for r in per_item]
        avg = sum(c / n for n, c in counts) / len(counts) if counts else 0.0
        ks = report_ks(max((n for n, _ in counts), default=0))
        passes, excluded = {}, {}
        for k in ks:
            eligible = [(n, c) for n, c in counts if n >= k]
            passes[k] = sum(pass_at_k(n, c, k) for n, c in eligible) / len(eligible)
            excluded[k] = len(counts) - len(eligible)
        return cls(
            per_item=per_item,
            avg_at_k=avg,
            pass_at_k=passes,
            pass_at_k_excluded=excluded,
            no_answer=sum(e is None for r in per_item for e in r["extracted"]),
            items=len(per_item),
            responses=sum(n for n, _ in counts),
            samples_per_item=dict(sorted(Counter(n for n, _ in counts).items())),
            timed_out=sum(bool(t) for r in per_item for t in r.get("timed_out", ())),
            missing=missing,
        )

    @property
    def samples_label(self) -> str:
        """"4", or "2-8" when items have unequal numbers of samples."""
        ns = list(self.samples_per_item) or [0]
        return str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"

    def to_json(self) -> dict:
        return {
            "items": self.items,
            "responses": self.responses,
            "samples_per_item": {str(n): m for n, m in self.samples_per_item.items()},
            "avg_at_k": self.avg_at_k,
            "pass_at_k": {str(k): v for k, v in self.pass_at_k.items()},
            "pass_at_k_excluded": {str(k): v for k, v in self.pass_at_k_excluded.items()},
            "no_answer": self.no_answer,
            "timed_out": self.timed_out,
            "missing": self.missing,
            "notes": list(self.notes),
            "per_item": self.per_item,
        }

    def format(self) -> str:
        if len(self.samples_per_item) == 1:
            samples = self.samples_label
        else:
            samples = ", ".join(f"{n} x{m}" for n, m in self.samples_per_item.items()) + " (samples x items)"
        lines = [f"{'items':<12} {self.items}" + (f" ({self.missing} without responses, not scored)" if self.missing else ""),
                 f"{'samples':<12} {samples} per item, {self.responses} responses",
                 f"{'avg@' + self.samples_label:<12} {self.avg_at_k:.4f}"]
        for k, value in self.pass_at_k.items():
            left_out = self.pass_at_k_excluded.get(k, 0)
            lines.append(f"{f'pass@{k}':<12} {value:.4f}"
                         + (f" ({left_out} items with fewer than {k} samples left out)" if left_out else ""))
        lines.append(f"{'no answer':<12} {self.no_answer} of {self.responses} responses")
        if self.timed_out:
            lines.append(f"{'timed out':<12} {self.timed_out} responses (counted wrong)")
        lines += self.notes
        return "\n".join(lines)
