"""`mas score`: a GSM8K-format file and a responses JSONL with several samples per item, printed
and written as JSON; GPQA with its seed; user mistakes are one line and exit code 2."""
from __future__ import annotations

import json

import pytest
from reasoning_data import GSM8K_ROWS, gpqa_rows, write_gpqa, write_jsonl

from mas.cli import main
from mas.evaluation.reasoning.loaders import load_benchmark


def test_score_gsm8k_with_two_samples_per_item(tmp_path, capsys):
    data = write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K_ROWS)
    golds = ["24", "1234", "180", "2200", "147"]
    lines = []
    for i, gold in enumerate(golds):
        lines.append({"index": i, "response": f"<think>hmm</think>The answer is $\\boxed{{{gold}}}$."})
        lines.append({"index": i, "response": "I don't know." if i < 2 else "It is 3."})  # 2 no-answers
    responses = write_jsonl(tmp_path / "responses.jsonl", lines)
    out = tmp_path / "report.json"
    assert main(["score", "--benchmark", "gsm8k", "--data", str(data), "--responses", str(responses),
                 "--json", str(out), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    for text in ("items        5", "2 per item, 10 responses", "avg@2        0.5000", "pass@1       0.5000",
                 "pass@2       1.0000", "no answer    2 of 10 responses"):
        assert text in printed, text
    report = json.loads(out.read_text())
    assert report["benchmark"] == "gsm8k" and report["avg_at_k"] == 0.5 and report["pass_at_k"] == {"1": 0.5, "2": 1.0}
    assert report["per_item"][0] == {"index": 0, "gold": "24", "samples": 2, "correct": [True, False],
                                     "extracted": ["24", None], "timed_out": [False, False]}


def test_score_gpqa_uses_the_seed_and_groups_systems(tmp_path, capsys):
    data = write_gpqa(tmp_path / "gpqa.csv", gpqa_rows(6))
    items = load_benchmark("gpqa", str(data), seed=5)
    lines = [{"system": "single agent", "index": i.index, "response": f"Answer: {i.gold}"} for i in items]
    lines += [{"system": "loop", "index": i.index, "response": "Answer: E"} for i in items]
    responses = write_jsonl(tmp_path / "responses.jsonl", lines)
    out = tmp_path / "report.json"
    assert main(["score", "--benchmark", "gpqa", "--data", str(data), "--responses", str(responses),
                 "--seed", "5", "--workers", "0", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[single agent]" in printed and "[loop]" in printed
    systems = json.loads(out.read_text())["systems"]
    assert systems["single agent"]["avg_at_k"] == 1.0 and systems["loop"]["avg_at_k"] == 0.0


@pytest.mark.parametrize("lines, message", [
    ([{"index": 0, "response": "24"}, {"index": 7, "response": "1"}], "line 2: index 7 is out of range"),
    ([{"index": "0", "response": "24"}], "line 1: 'index' must be an integer"),
    ([{"idx": 0, "response": "24"}], 'line 1: expected {"index": i, "response": "..."}'),
])
def test_bad_responses_are_one_line_with_exit_code_2(tmp_path, capsys, lines, message):
    data = write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K_ROWS)
    responses = write_jsonl(tmp_path / "responses.jsonl", lines)
    with pytest.raises(SystemExit) as exc:
        main(["score", "--benchmark", "gsm8k", "--data", str(data), "--responses", str(responses), "--workers", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mas: error: ") and message in err and "\n" not in err


def test_fields_for_generic_jsonl_and_unknown_benchmark(tmp_path, capsys):
    data = write_jsonl(tmp_path / "x.jsonl", [{"q": "1+1?", "a": "2"}, {"q": "2+2?", "a": "4"}])
    responses = write_jsonl(tmp_path / "r.jsonl", [{"index": 0, "response": "2"}, {"index": 1, "response": "5"}])
    assert main(["score", "--benchmark", "jsonl", "--data", str(data), "--responses", str(responses),
                 "--fields", "question=q,answer=a", "--workers", "0"]) == 0
    assert "avg@1        0.5000" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["score", "--benchmark", "mmlu", "--data", str(data), "--responses", str(responses)])
    assert "unknown benchmark 'mmlu'" in capsys.readouterr().err
