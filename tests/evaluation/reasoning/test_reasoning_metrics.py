"""avg@k and unbiased pass@k against hand-computed values (docs/algorithms.md, "Reasoning evaluation")."""
from __future__ import annotations

from itertools import combinations

import pytest

from mas.evaluation.reasoning.metrics import Report, pass_at_k, report_ks


def brute_pass_at_k(n: int, c: int, k: int) -> float:
    """The fraction of k-subsets of n samples (c correct) holding at least one correct sample."""
    subsets = list(combinations([True] * c + [False] * (n - c), k))
    return sum(any(s) for s in subsets) / len(subsets)


def item(index: int, correct: list[bool], extracted=None) -> dict:
    return {"index": index, "gold": "1", "samples": len(correct), "correct": correct,
            "extracted": extracted or ["1"] * len(correct), "timed_out": [False] * len(correct)}


def test_pass_at_k_closed_form_and_by_enumeration():
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(10, 3, 4) == pytest.approx(1 - 35 / 210)  # 1 - C(7,4)/C(10,4)
    assert pass_at_k(5, 0, 3) == 0.0 and pass_at_k(5, 3, 3) == 1.0  # n - c < k: every subset hits
    for n in range(1, 8):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k))
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5)  # large n stays exact
    for bad in [(4, 5, 1), (4, 1, 0), (4, 1, 5)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)


def test_report_ks():
    assert report_ks(1) == [1] and report_ks(4) == [1, 2, 4] and report_ks(6) == [1, 2, 4, 6]
    assert report_ks(16) == [1, 2, 4, 8, 16]


def test_report_with_equal_samples_avg_is_mean_accuracy():
    per_item = [item(0, [True, False, False, False]), item(1, [True, True, True, True]),
                item(2, [False] * 4, extracted=[None, "3", None, "7"])]
    r = Report.from_items(per_item)
    assert r.avg_at_k == pytest.approx((0.25 + 1.0 + 0.0) / 3)
    assert list(r.pass_at_k) == [1, 2, 4]
    assert r.pass_at_k[1] == pytest.approx(r.avg_at_k)  # pass@1 is mean accuracy
    assert r.pass_at_k[2] == pytest.approx(((1 - 3 / 6) + 1 + 0) / 3)
    assert r.pass_at_k[4] == pytest.approx((1 + 1 + 0) / 3)
    assert r.pass_at_k_excluded == {1: 0, 2: 0, 4: 0}
    assert (r.no_answer, r.items, r.responses, r.samples_per_item) == (2, 3, 12, {4: 3})
    assert r.samples_label == "4"
    text = r.format()
    assert "avg@4" in text and "pass@4" in text and "2 of 12 responses" in text


def test_report_with_unequal_samples_excludes_and_counts_short_items():
    per_item = [item(0, [True, False]), item(1, [False, False, True, True]), item(2, [True]),
                item(3, [False, True, False, False, False, False, False, False])]
    r = Report.from_items(per_item, missing=1)
    assert r.avg_at_k == pytest.approx((1 / 2 + 2 / 4 + 1 + 1 / 8) / 4)  # per item first, then over items
    assert list(r.pass_at_k) == [1, 2, 4, 8]
    assert r.pass_at_k[2] == pytest.approx((pass_at_k(2, 1, 2) + pass_at_k(4, 2, 2) + pass_at_k(8, 1, 2)) / 3)
    assert r.pass_at_k[4] == pytest.approx((pass_at_k(4, 2, 4) + pass_at_k(8, 1, 4)) / 2)
    assert r.pass_at_k[8] == pytest.approx(1.0)
    assert r.pass_at_k_excluded == {1: 0, 2: 1, 4: 2, 8: 3}
    assert r.samples_per_item == {1: 1, 2: 1, 4: 1, 8: 1} and r.samples_label == "1-8"
    j = r.to_json()
    assert j["pass_at_k"]["4"] == r.pass_at_k[4] and j["pass_at_k_excluded"]["8"] == 3 and j["missing"] == 1
    assert j["per_item"][3]["correct"][1] is True
    assert "(3 items with fewer than 8 samples left out)" in r.format() and "1 without responses" in r.format()
