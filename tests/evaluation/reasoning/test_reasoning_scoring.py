"""Scoring: gold solutions score 100% and shifted ones ~0%, math-verify equivalences, `</think>`,
multiple choice, and timeouts (a slow item counts wrong and is reported; a stuck or dead worker is
replaced)."""
from __future__ import annotations

import pytest
from reasoning_data import (
    GSM8K_ROWS,
    MATH_ROWS,
    flaky_worker,
    gpqa_rows,
    write_gpqa,
    write_jsonl,
)

from mas.evaluation.reasoning import scoring
from mas.evaluation.reasoning.loaders import Item, load_benchmark
from mas.evaluation.reasoning.scoring import extract_answer, score_item, score_responses


def shifted(items: list[Item]) -> list[tuple[int, str]]:
    """Each item answered with the next item's gold solution."""
    return [(item.index, items[(n + 1) % len(items)].solution) for n, item in enumerate(items)]


def test_gsm8k_gold_solutions_score_full_marks_in_worker_processes(tmp_path):
    items = load_benchmark("gsm8k", str(write_jsonl(tmp_path / "g.jsonl", GSM8K_ROWS)))
    gold = score_responses(items, [(i.index, i.solution) for i in items], workers=2)
    assert gold.avg_at_k == 1.0 and gold.pass_at_k == {1: 1.0} and gold.no_answer == 0
    assert [r["extracted"][0] for r in gold.per_item] == ["24", "1234", "180", "2200", "147"]
    off = score_responses(items, shifted(items), workers=0)
    assert off.avg_at_k == 0.0 and off.items == 5


def test_math_gold_solutions_score_full_marks_and_shifted_near_zero(tmp_path):
    items = load_benchmark("math", str(write_jsonl(tmp_path / "m.jsonl", MATH_ROWS)))
    gold = score_responses(items, [(i.index, i.solution) for i in items], workers=0)
    assert [r["correct"] for r in gold.per_item] == [[True]] * len(MATH_ROWS)
    off = score_responses(items, shifted(items), workers=0)
    assert off.avg_at_k <= 1 / len(MATH_ROWS)


@pytest.mark.parametrize("gold, response, right", [
    ("1234", "So the total is 1,234 houses.", True),  # thousands separator in the response
    ("1,234", "The answer is $\\boxed{1234}$.", True),  # ... and in the gold
    ("\\frac{3}{4}", "The answer is 0.75", True),
    ("0.75", "$\\boxed{\\frac{3}{4}}$", True),
    ("\\frac{3}{4}", "Final answer: 3/4", True),
    ("\\frac{3}{4}", "$\\boxed{\\frac{4}{3}}$", False),
    ("2\\sqrt{3}", "$\\boxed{\\sqrt{12}}$", True),
    ("2\\sqrt{3}", "$\\boxed{3\\sqrt{2}}$", False),
    ("(1, 2)", "The point is $\\boxed{(1,2)}$.", True),
    ("(1, 2)", "The point is $\\boxed{(2,1)}$.", False),
    ("[0, 1)", "The range is $\\boxed{[0,1)}$.", True),
    ("[0, 1)", "The range is $\\boxed{[0,1]}$.", False),
    ("-\\frac{\\pi}{2}", "$\\boxed{-\\pi/2}$", True),
    ("\\text{Tuesday}", "It is $\\boxed{\\text{Tuesday}}$.", True),
    ("5", "First $\\boxed{3}$, then on reflection $x = \\boxed{5}$.", True),  # the last box counts
    ("8", "<think>maybe \\boxed{7}</think>The answer is $\\boxed{8}$.", True),  # after the last </think>
    ("7", "<think>maybe \\boxed{7}</think>The answer is $\\boxed{8}$.", False),
    ("7", "<think>a</think><think>\\boxed{7}</think>so it is 9", False),
    ("10", "I could not solve it.", False),
])
def test_math_equivalences(gold, response, right):
    [(correct, _, timed_out)] = score_item(gold, "math", [response], timeout=5.0)
    assert correct is right and not timed_out


def test_extract_answer():
    assert extract_answer("<think>\\boxed{5}</think> so $\\boxed{\\frac{1}{2}}$", "math") == "\\frac{1}{2}"
    assert extract_answer("no numbers here", "math") is None
    for text, letter in [("Answer: C", "C"), ("**Answer:** (B)", "B"), ("answer: \\boxed{D}.", "D"),
                         ("Answer: A ... wait. Answer: D", "D"), ("<think>Answer: A</think>Answer: B", "B"),
                         ("The answer is C.", "C"), ("I will answer a question. Answer: The second", None),
                         ("no letter", None)]:
        assert extract_answer(text, "choice") == letter, text
    with pytest.raises(ValueError, match="unknown answer kind 'code'"):
        extract_answer("x", "code")


def test_gpqa_choice_scoring_follows_the_shuffled_letter(tmp_path):
    items = load_benchmark("gpqa", str(write_gpqa(tmp_path / "gpqa.csv", gpqa_rows(12))), seed=3)
    right = score_responses(items, [(i.index, f"Reasoning...\nAnswer: {i.gold}") for i in items], workers=0)
    assert right.avg_at_k == 1.0
    wrong = [(i.index, f"Answer: {'ABCD'[('ABCD'.index(i.gold) + 1) % 4]}") for i in items]
    assert score_responses(items, wrong, workers=0).avg_at_k == 0.0
    unanswered = score_responses(items, [(i.index, "I am not sure.") for i in items], workers=0)
    assert unanswered.avg_at_k == 0.0 and unanswered.no_answer == 12


def test_samples_per_index_missing_items_and_bad_indices(tmp_path):
    items = load_benchmark("gsm8k", str(write_jsonl(tmp_path / "g.jsonl", GSM8K_ROWS)))
    responses = [(0, "#### 24"), (0, "#### 25"), (0, "24"), (0, "no"), (2, "180"), (2, "It is 180.")]
    r = score_responses(items, responses, workers=0)
    assert (r.items, r.missing, r.responses, r.no_answer) == (2, 3, 6, 1)
    assert r.per_item[0]["correct"] == [True, False, True, False] and r.per_item[1]["correct"] == [True, True]
    assert r.avg_at_k == pytest.approx((0.5 + 1.0) / 2)
    assert r.pass_at_k_excluded == {1: 0, 2: 0, 4: 1}
    with pytest.raises(ValueError, match=r"response 1: index 9 is not an item of the benchmark \(items 0..4\)"):
        score_responses(items, [(0, "1"), (9, "2")], workers=0)


def test_slow_response_times_out_counts_wrong_and_is_reported(tmp_path):
    items = load_benchmark("math", str(write_jsonl(tmp_path / "m.jsonl", MATH_ROWS)))[:3]
    responses = [(i.index, i.solution) for i in items] + [(1, "$\\boxed{9^{9^{9^{9}}}}$")]  # sympy grinds on
    r = score_responses(items, responses, workers=2, timeout=1.0)
    assert r.per_item[1]["correct"] == [True, False] and r.per_item[1]["timed_out"] == [False, True]
    assert r.timed_out == 1 and r.avg_at_k == pytest.approx((1 + 0.5 + 1) / 3)
    assert "1 responses (counted wrong)" in r.format()


def test_stuck_and_dead_workers_are_replaced(monkeypatch):
    monkeypatch.setattr(scoring, "KILL_GRACE_S", 0.5)
    tasks = [("1", "math", ["1"]), ("2", "math", ["hang"]), ("3", "math", ["3"]), ("4", "math", ["die"]),
             ("5", "math", ["the answer is 5"]), ("6", "math", ["7"])]
    results = scoring._run_pool(tasks, 2, 1.0, target=flaky_worker)
    assert results[1] == [(False, None, True)] and results[3] == [(False, None, True)]
    assert [results[i][0][0] for i in (0, 2, 4, 5)] == [True, True, True, False]
