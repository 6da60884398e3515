"""Arithmetic word problems the project generates, with a verifiable integer answer.

The CPU stand-in for the math tasks of Dr. MAS (arXiv:2602.08847): a solver answers in `\\boxed{N}`,
a checker compares the last boxed (or tagged, or bare) integer with the gold answer. Problems are
drawn from a seeded generator, so a seed names a problem; `write_problems` saves a JSONL file in
the GSM8K layout (`question`, `answer` ending in `#### N`) for evaluation runs.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Problem", "ArithmeticTask", "parse_number", "write_problems"]

_NAMES = ("Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun")
_ITEMS = ("apples", "marbles", "stickers", "coins", "books", "shells", "pens", "cards")


@dataclass(frozen=True)
class Problem:
    question: str
    answer: int

    def to_json(self) -> dict:
        return {"question": self.question, "answer": f"{self.answer}\n#### {self.answer}"}


_BOXED_RE = re.compile(r"\\boxed\{\s*(-?\d+)\s*\}")
_TAG_RE = re.compile(r"<answer>\s*(-?\d+)\s*</answer>", re.IGNORECASE)
_INT_RE = re.compile(r"-?\d+")


def parse_number(text: str) -> int | None:
    """The answer of a solver's text: the last `\\boxed{N}`, else the last `<answer>N</answer>`,
    else the text when it is a bare integer; None otherwise (an invalid answer)."""
    for pattern in (_BOXED_RE, _TAG_RE):
        found = pattern.findall(text or "")
        if found:
            return int(found[-1])
    bare = (text or "").strip()
    return int(bare) if _INT_RE.fullmatch(bare) else None


class ArithmeticTask:
    """Word problems with `steps` additions or subtractions on counts up to `max_value`; every
    intermediate count stays in [0, max_value], so the answer set is 0..max_value.

    `malformed_answers: k` adds k answers that do not parse ("?", "??", ...) to the constrained
    answer set, so that a constrained solver can still write an invalid answer and pay the
    per-step format penalty (a CPU stand-in for format errors of free-text models)."""

    name = "arithmetic"
    instruction = "Give the final answer as \\boxed{N}."
    parse = staticmethod(parse_number)

    def __init__(self, max_value: int = 20, steps: int = 1, malformed_answers: int = 0):
        if max_value < 2:
            raise ValueError(f"arithmetic task: max_value must be >= 2, got {max_value}")
        if steps < 1:
            raise ValueError(f"arithmetic task: steps must be >= 1, got {steps}")
        if not 0 <= malformed_answers <= 5:
            raise ValueError(f"arithmetic task: malformed_answers must be in 0..5, got {malformed_answers}")
        self.max_value = max_value
        self.steps = steps
        self.malformed = ["?" * (i + 1) for i in range(malformed_answers)]

    def answers(self) -> list[str]:
        """Every possible answer, for constrained decoding."""
        return [str(n) for n in range(self.max_value + 1)] + self.malformed

    def problem(self, seed: int) -> Problem:
        rng = np.random.default_rng(seed)
        name = _NAMES[rng.integers(len(_NAMES))]
        item = _ITEMS[rng.integers(len(_ITEMS))]
        count = int(rng.integers(0, self.max_value + 1))
        sentences = [f"{name} has {count} {item}."]
        for _ in range(self.steps):
            can_add, can_take = self.max_value - count, count
            if can_take and (not can_add or rng.random() < 0.5):
                k = int(rng.integers(1, can_take + 1))
                count -= k
                sentences.append(f"{name} gives away {k}.")
            else:
                k = int(rng.integers(1, can_add + 1))
                count += k
                sentences.append(f"{name} finds {k} more.")
        sentences.append(f"How many {item} does {name} have now?")
        return Problem(" ".join(sentences), count)

    def check(self, value: int | None, problem: Problem) -> bool:
        """A parsed answer (see `parse`) against the problem's."""
        return value is not None and value == problem.answer


def write_problems(path: str | Path, count: int, seed: int = 0, **task_options) -> Path:
    """`count` problems as JSONL (GSM8K layout); the same arguments always write the same file."""
    task = ArithmeticTask(**task_options)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for i in range(count):
            f.write(json.dumps(task.problem(seed * 1_000_003 + i).to_json()) + "\n")
    return path
