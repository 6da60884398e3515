"""Time `mas score` on a generated GSM8K-format file: python benchmarks/score_speed.py [ITEMS] [SAMPLES] [WORKERS]

Writes ITEMS made-up word problems (worked solution with calculator annotations, `#### N` with
thousands separators) and SAMPLES responses per item in a mix of styles (boxed, `</think>`, plain
text, wrong, no answer), then loads and scores them in worker processes and prints the wall time."""
from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path


def write_files(folder: Path, items: int, samples: int, seed: int = 0) -> tuple[Path, Path, float]:
    """The benchmark file, the responses file, and the expected accuracy."""
    rng = random.Random(seed)
    data, responses, right = [], [], 0
    for i in range(items):
        a, b, c = rng.randint(100, 9999), rng.randint(10, 999), rng.randint(2, 9)
        total = (a + b) * c
        data.append({"question": f"A shop has {a:,} items, gets {b} more, then multiplies stock by {c}. How many?",
                     "answer": f"{a} + {b} = <<{a}+{b}={a + b}>>{a + b}.\n{a + b} * {c} = <<{a + b}*{c}={total}>>{total}."
                               f"\n#### {total:,}"})
        for s in range(samples):
            style = (i + s) % 5
            if style == 0:
                text, ok = f"<think>Maybe {a}? Let me add {b}.</think>So the stock is $\\boxed{{{total}}}$.", True
            elif style == 1:
                text, ok = f"First {a}+{b}={a + b}, times {c}, gives {total:,} items.", True
            elif style == 2:
                text, ok = f"The answer is $\\boxed{{{total + 1}}}$.", False
            elif style == 3:
                text, ok = data[-1]["answer"], True
            else:
                text, ok = "I am not sure how to solve this.", False
            responses.append({"index": i, "response": text})
            right += ok
    data_path, responses_path = folder / "gsm8k.jsonl", folder / "responses.jsonl"
    data_path.write_text("".join(json.dumps(r) + "\n" for r in data))
    responses_path.write_text("".join(json.dumps(r) + "\n" for r in responses))
    return data_path, responses_path, right / (items * samples)


def main() -> None:
    items, samples = int(sys.argv[1]) if len(sys.argv) > 1 else 1000, int(sys.argv[2]) if len(sys.argv) > 2 else 1
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else None
    from mas.evaluation.reasoning.cli import read_responses
    from mas.evaluation.reasoning.loaders import load_benchmark
    from mas.evaluation.reasoning.scoring import score_responses

    with tempfile.TemporaryDirectory() as tmp:
        data, responses, expected = write_files(Path(tmp), items, samples)
        t0 = time.perf_counter()
        loaded = load_benchmark("gsm8k", str(data))
        pairs = read_responses(str(responses), {item.index for item in loaded})[None]
        report = score_responses(loaded, pairs, workers=workers)
        seconds = time.perf_counter() - t0
    print(report.format())
    print(f"expected avg@{samples} {expected:.4f}; {items} items x {samples} samples scored in {seconds:.1f} s "
          f"({'all' if workers is None else workers} workers)")


if __name__ == "__main__":
    main()
