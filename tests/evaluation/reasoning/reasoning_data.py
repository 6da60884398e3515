"""Small benchmark files in the public formats, written by the tests themselves (no benchmark data
is copied into the repository). Problems are made up; the layouts follow GSM8K, MATH and GPQA."""
from __future__ import annotations

import csv
import json
from pathlib import Path

# GSM8K layout: a worked solution with calculator annotations, the final answer after "#### ".
GSM8K_ROWS = [
    {"question": "A baker makes 48 rolls and sells half. How many are left?",
     "answer": "Half of 48 is 48/2 = <<48/2=24>>24.\nSo 48-24 = <<48-24=24>>24 are left.\n#### 24"},
    {"question": "A town has 1,000 houses and builds 234 more. How many houses are there?",
     "answer": "1,000 + 234 = <<1000+234=1234>>1,234 houses.\n#### 1,234"},
    {"question": "Tickets cost $12 each. How much do 15 tickets cost?",
     "answer": "15 * 12 = <<15*12=180>>180 dollars.\n#### 180"},
    {"question": "A tank holds 2,500 litres and leaks 75 litres a day. How much is left after 4 days?",
     "answer": "It leaks 75*4 = <<75*4=300>>300 litres.\n2,500 - 300 = <<2500-300=2200>>2,200 litres.\n#### 2,200"},
    {"question": "Sam reads 7 pages a day for 3 weeks. How many pages?",
     "answer": "3 weeks is 3*7 = <<3*7=21>>21 days.\n21 * 7 = <<21*7=147>>147 pages.\n#### 147"},
]

# MATH layout: problem, a solution whose final answer is boxed, and the answer field.
MATH_ROWS = [
    {"problem": "Write $\\frac{6}{8}$ in lowest terms.",
     "solution": "Dividing by 2, $\\frac{6}{8} = \\boxed{\\frac{3}{4}}$.", "answer": "\\frac{3}{4}"},
    {"problem": "Simplify $\\sqrt{12}$.",
     "solution": "$\\sqrt{12} = \\sqrt{4 \\cdot 3} = \\boxed{2\\sqrt{3}}$.", "answer": "2\\sqrt{3}"},
    {"problem": "Where do $y = x + 1$ and $y = 3x - 1$ meet?",
     "solution": "Then $x + 1 = 3x - 1$, so $x = 1$ and $y = 2$: the point $\\boxed{(1, 2)}$.", "answer": "(1, 2)"},
    {"problem": "Solve $0 \\le x < 1$ in interval notation.",
     "solution": "The set is $\\boxed{[0, 1)}$.", "answer": "[0, 1)"},
    {"problem": "What is $1000 + 234$?", "solution": "The sum is $\\boxed{1,\\!234}$.", "answer": "1234"},
    {"problem": "Which day follows Monday?", "solution": "It is $\\boxed{\\text{Tuesday}}$.", "answer": "\\text{Tuesday}"},
    {"problem": "Find the angle $\\theta$ in $(-\\pi, 0)$ with $\\sin\\theta = -1$.",
     "solution": "Only $\\theta = \\boxed{-\\frac{\\pi}{2}}$ works.", "answer": "-\\frac{\\pi}{2}"},
    {"problem": "Solve $2x - 3 = 7$.", "solution": "So $2x = 10$ and $x = \\boxed{5}$.", "answer": "5"},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def gpqa_rows(n: int) -> list[dict]:
    """n multiple-choice rows in the GPQA CSV layout (extra columns as in the real file)."""
    return [{"Record ID": f"rec{i}", "Question": f"Which value is right for case {i}?",
             "Correct Answer": f"right {i}", "Incorrect Answer 1": f"wrong {i}a",
             "Incorrect Answer 2": f"wrong {i}b", "Incorrect Answer 3": f"wrong {i}c",
             "Explanation": f"because {i}"} for i in range(n)]


def write_gpqa(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def flaky_worker(conn) -> None:
    """A scoring worker (scoring._worker's protocol) that hangs deaf to alarms on a response
    "hang" and dies on "die"; other items are scored for real."""
    import os
    import signal
    import time

    from mas.evaluation.reasoning.scoring import score_item, warm_up

    warm_up()
    conn.send(("ready",))
    while True:
        task = conn.recv()
        if task is None:
            return
        task_id, gold, kind, responses, timeout = task
        if responses[0] == "hang":
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(3600)
        if responses[0] == "die":
            os._exit(3)
        conn.send(("done", task_id, score_item(gold, kind, responses, timeout)))
