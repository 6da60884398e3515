"""Benchmark loaders: the gold of each format, GPQA's seeded option shuffle, and one-line errors."""
from __future__ import annotations

import json

import pytest
from reasoning_data import GSM8K_ROWS, MATH_ROWS, gpqa_rows, write_gpqa, write_jsonl

from mas.evaluation.reasoning.loaders import BENCHMARKS, load_benchmark, parse_fields


def test_gsm8k_gold_is_the_text_after_hashes_without_commas(tmp_path):
    items = load_benchmark("gsm8k", str(write_jsonl(tmp_path / "g.jsonl", GSM8K_ROWS)))
    assert [i.gold for i in items] == ["24", "1234", "180", "2200", "147"]
    assert [i.index for i in items] == [0, 1, 2, 3, 4]
    assert items[1].solution == GSM8K_ROWS[1]["answer"] and items[1].question == GSM8K_ROWS[1]["question"]
    assert {i.kind for i in items} == {"math"}


def test_math_and_alias_read_answer_field_or_last_boxed(tmp_path):
    path = str(write_jsonl(tmp_path / "m.jsonl", MATH_ROWS))
    items = load_benchmark("math", path)
    assert [i.gold for i in items] == [r["answer"] for r in MATH_ROWS]
    assert load_benchmark("math500", path) == items
    # the original MATH layout has no `answer`: the last \boxed{} of the solution, braces matched
    rows = [{"problem": "p", "solution": "First $\\boxed{1}$, finally $\\boxed{\\frac{1}{2}}$."}]
    assert load_benchmark("math", str(write_jsonl(tmp_path / "raw.jsonl", rows)))[0].gold == "\\frac{1}{2}"


def test_aime_amc_accept_problem_or_question_in_any_case(tmp_path):
    rows = [{"Problem": "p0", "Answer": 204}, {"question": "p1", "answer": "33", "solution": "s"}]
    for name in ("aime", "amc"):
        items = load_benchmark(name, str(write_jsonl(tmp_path / f"{name}.jsonl", rows)))
        assert [(i.question, i.gold, i.solution) for i in items] == [("p0", "204", None), ("p1", "33", "s")]


def test_generic_jsonl_with_field_mapping_and_limit(tmp_path):
    rows = [{"q": f"what is {i}+1?", "a": str(i + 1)} for i in range(10)]
    path = str(write_jsonl(tmp_path / "x.jsonl", rows))
    items = load_benchmark("jsonl", path, fields=parse_fields("question=q,answer=a"), limit=3)
    assert [(i.index, i.question, i.gold, i.kind) for i in items] == [
        (0, "what is 0+1?", "1", "math"), (1, "what is 1+1?", "2", "math"), (2, "what is 2+1?", "3", "math")]


def test_gpqa_permutation_is_reproducible_varies_with_seed_and_moves_the_gold(tmp_path):
    rows = gpqa_rows(24)
    path = str(write_gpqa(tmp_path / "gpqa.csv", rows))
    items = load_benchmark("gpqa", path, seed=0)
    assert load_benchmark("gpqa", path, seed=0) == items  # reproducible
    other = load_benchmark("gpqa", path, seed=1)
    assert [i.question for i in other] != [i.question for i in items]  # another seed, another order
    assert len({i.gold for i in items}) >= 3  # the right answer does not sit in one slot
    for item, row in zip(items, rows):
        assert item.kind == "choice" and item.question.startswith(row["Question"] + "\n\n")
        options = dict(line.split(") ", 1) for line in item.question.split("\n\n", 1)[1].splitlines())
        assert sorted(options) == ["A", "B", "C", "D"]
        assert options[item.gold] == row["Correct Answer"]
        assert sorted(options.values()) == sorted(row[c] for c in ("Correct Answer", "Incorrect Answer 1",
                                                                    "Incorrect Answer 2", "Incorrect Answer 3"))


@pytest.mark.parametrize("name, content, message", [
    ("gsm8k", [{"question": "q", "answer": "a\n#### 3"}, {"question": "q"}], "line 2: missing field 'answer'"),
    ("gsm8k", [{"question": "q", "answer": "no final line"}], "line 1: 'answer' has no final answer"),
    ("math", [{"problem": "p", "solution": "no box"}], "line 1: missing field 'answer' and no \\boxed{}"),
    ("aime", [{"answer": "1"}], "line 1: missing field 'problem' or 'question'"),
])
def test_missing_fields_name_the_file_and_line(tmp_path, name, content, message):
    path = write_jsonl(tmp_path / "bad.jsonl", content)
    with pytest.raises(ValueError) as err:
        load_benchmark(name, str(path))
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value) and "\n" not in str(err.value)


def test_other_bad_input_is_one_clear_line(tmp_path):
    bad_json = tmp_path / "broken.jsonl"
    bad_json.write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n\n{oops\n")
    with pytest.raises(ValueError, match=r"broken.jsonl: line 3: not valid JSON"):
        load_benchmark("gsm8k", str(bad_json))
    with pytest.raises(ValueError, match=r"unknown benchmark 'mmlu'; choose from gsm8k, math"):
        load_benchmark("mmlu", str(bad_json))
    with pytest.raises(ValueError, match=r"nowhere.jsonl: no such file"):
        load_benchmark("gsm8k", str(tmp_path / "nowhere.jsonl"))
    rows = gpqa_rows(3)
    rows[2]["Incorrect Answer 2"] = ""
    with pytest.raises(ValueError, match=r"gpqa.csv: row 3: empty column 'Incorrect Answer 2'"):
        load_benchmark("gpqa", str(write_gpqa(tmp_path / "gpqa.csv", rows)))
    no_column = [{k: v for k, v in r.items() if k != "Correct Answer"} for r in gpqa_rows(2)]
    with pytest.raises(ValueError, match=r"header row: missing column 'Correct Answer'"):
        load_benchmark("gpqa", str(write_gpqa(tmp_path / "g2.csv", no_column)))
    with pytest.raises(ValueError, match=r"--fields: expected question=FIELD,answer=FIELD, got 'question'"):
        parse_fields("question")
    with pytest.raises(ValueError, match=r"unknown key 'gold'"):
        load_benchmark("jsonl", str(bad_json), fields={"gold": "x"})
    assert "jsonl" in BENCHMARKS and "math500" in BENCHMARKS
