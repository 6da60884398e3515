"""The generated arithmetic task: reproducible problems whose stated answer is right, and answer
parsing from boxed, tagged or bare text."""
from __future__ import annotations

import json
import re

import pytest

from mas.games.arithmetic import ArithmeticTask, parse_number, write_problems


def _solve(question: str) -> int:
    """Recompute the answer from the words, independently of the generator."""
    count = int(re.search(r"has (\d+)", question).group(1))
    for verb, k in re.findall(r"(gives away|finds) (\d+)", question):
        count += int(k) if verb == "finds" else -int(k)
    return count


@pytest.mark.parametrize("steps", [1, 3])
def test_problems_are_reproducible_and_correct(steps):
    task = ArithmeticTask(max_value=12, steps=steps)
    for seed in range(200):
        p = task.problem(seed)
        assert p == task.problem(seed)
        assert _solve(p.question) == p.answer
        assert 0 <= p.answer <= 12 and str(p.answer) in task.answers()
        assert len(re.findall(r"gives away|finds", p.question)) == steps
    assert len({task.problem(s).question for s in range(50)}) > 40


@pytest.mark.parametrize("text, value", [
    ("so the answer is \\boxed{7}", 7),
    ("\\boxed{3} no wait \\boxed{ 5 }", 5),
    ("<answer>12</answer>", 12),
    ("  4 ", 4),
    ("four", None),
    ("I have 3 apples and 2 pears", None),  # no final answer stated
    ("", None),
])
def test_parse_number(text, value):
    assert parse_number(text) == value


def test_write_problems_gsm8k_layout(tmp_path):
    path = write_problems(tmp_path / "a.jsonl", 5, seed=3, max_value=10)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 5
    for row in rows:
        gold = int(row["answer"].split("#### ")[-1])
        assert _solve(row["question"]) == gold
    assert write_problems(tmp_path / "b.jsonl", 5, seed=3, max_value=10).read_text() == path.read_text()


def test_malformed_answers_are_offered_and_do_not_parse():
    task = ArithmeticTask(max_value=3, malformed_answers=2)
    assert task.answers() == ["0", "1", "2", "3", "?", "??"]
    assert parse_number("\\boxed{??}") is None


def test_bad_task_options():
    with pytest.raises(ValueError, match="max_value"):
        ArithmeticTask(max_value=1)
    with pytest.raises(ValueError, match="steps"):
        ArithmeticTask(steps=0)
