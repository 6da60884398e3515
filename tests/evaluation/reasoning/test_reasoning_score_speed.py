"""1,000 generated GSM8K-format items score in well under a minute in worker processes (measured
about 2-3 s on 2 shared cores); the accuracy matches the mix of right and wrong responses."""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from mas.evaluation.reasoning.cli import read_responses
from mas.evaluation.reasoning.loaders import load_benchmark
from mas.evaluation.reasoning.scoring import score_responses

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "score_speed.py"


def test_thousand_items_score_in_under_a_minute(tmp_path):
    spec = importlib.util.spec_from_file_location("score_speed", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    data, responses, expected = script.write_files(tmp_path, 1000, 1)
    t0 = time.perf_counter()
    items = load_benchmark("gsm8k", str(data))
    report = score_responses(items, read_responses(str(responses), {i.index for i in items})[None])
    seconds = time.perf_counter() - t0
    assert report.items == 1000 and report.avg_at_k == expected and report.no_answer == 200
    assert seconds < 60, f"scoring 1,000 items took {seconds:.1f} s"
