"""Reasoning benchmarks from local files in their public formats (docs/algorithms.md, "Reasoning
evaluation"). Every loader returns `Item`s; a malformed file is a one-line ValueError that names the
file, the line (or CSV row) and what is wrong.

Formats: `gsm8k` JSONL (`question`, `answer` ending in `#### N`), `math`/`math500` JSONL (`problem`,
`solution`, `answer`; without `answer` the last `\\boxed{}` of `solution`), `aime`/`amc` JSONL
(`problem` or `question`, `answer`; keys in any case), `gpqa` CSV (`Question`, `Correct Answer`,
`Incorrect Answer 1..3`, options shuffled per item), `jsonl` generic (`fields` maps question/answer,
and optionally solution, to the file's keys; kind math)."""
from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mas.seeding import stable_seed

BENCHMARKS = ("gsm8k", "math", "math500", "aime", "amc", "gpqa", "jsonl")  # math500 = alias of math
CHOICE_LETTERS = "ABCD"


@dataclass
class Item:
    index: int  # 0-based position in the file
    question: str  # the text a prompt template fills in; GPQA: question plus shuffled options "A) ...\nB) ..."
    gold: str  # reference answer (GSM8K: after "#### ", commas removed; GPQA: the correct letter)
    kind: str  # "math" or "choice"
    solution: str | None = None  # the full gold solution where the format has one


# --- reading ---------------------------------------------------------------------------------
def _jsonl_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each non-blank line."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}: line {lineno}: expected a JSON object, got {type(record).__name__}")
            yield lineno, record


def _field(record: dict, names: tuple[str, ...], where: str, *, any_case: bool = False) -> str:
    """The first of `names` present in `record` (optionally matching keys in any case), as text."""
    keys = {k.lower(): k for k in record} if any_case else {k: k for k in record}
    for name in names:
        key = keys.get(name.lower() if any_case else name)
        if key is not None and record[key] is not None:
            return str(record[key])
    wanted = " or ".join(f"'{n}'" for n in names)
    raise ValueError(f"{where}: missing field {wanted} (has: {', '.join(sorted(map(str, record))) or 'nothing'})")


def last_boxed(text: str) -> str | None:
    """The contents of the last `\\boxed{...}` (or `\\fbox{...}`) in `text`, braces matched."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    open_at = text.find("{", start)
    if open_at < 0:
        return None
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_at + 1:i].strip()
    return None


# --- one loader per format (registered by name) ----------------------------------------------
Loader = Callable[[Path, int, "dict[str, str] | None"], Iterator[Item]]
LOADERS: dict[str, Loader] = {}


def register_loader(*names: str):
    def wrap(fn: Loader) -> Loader:
        for name in names:
            LOADERS[name] = fn
        return fn
    return wrap


@register_loader("gsm8k")
def _gsm8k(path: Path, seed: int, fields: dict[str, str] | None) -> Iterator[Item]:
    for index, (lineno, record) in enumerate(_jsonl_records(path)):
        where = f"{path}: line {lineno}"
        question, solution = _field(record, ("question",), where), _field(record, ("answer",), where)
        if "####" not in solution:
            raise ValueError(f"{where}: 'answer' has no final answer after '#### '")
        gold = solution.rsplit("####", 1)[1].strip().replace(",", "")
        if not gold:
            raise ValueError(f"{where}: 'answer' is empty after '#### '")
        yield Item(index, question, gold, "math", solution)


@register_loader("math", "math500")
def _math(path: Path, seed: int, fields: dict[str, str] | None) -> Iterator[Item]:
    for index, (lineno, record) in enumerate(_jsonl_records(path)):
        where = f"{path}: line {lineno}"
        question, solution = _field(record, ("problem",), where), _field(record, ("solution",), where)
        gold = str(record["answer"]) if record.get("answer") is not None else last_boxed(solution)
        if not gold:
            raise ValueError(f"{where}: missing field 'answer' and no \\boxed{{}} answer in 'solution'")
        yield Item(index, question, gold, "math", solution)


@register_loader("aime", "amc")
def _competition(path: Path, seed: int, fields: dict[str, str] | None) -> Iterator[Item]:
    for index, (lineno, record) in enumerate(_jsonl_records(path)):
        where = f"{path}: line {lineno}"
        question = _field(record, ("problem", "question"), where, any_case=True)
        gold = _field(record, ("answer",), where, any_case=True).strip()
        solution = next((str(v) for k, v in record.items() if k.lower() == "solution" and v is not None), None)
        yield Item(index, question, gold, "math", solution)


@register_loader("jsonl")
def _generic(path: Path, seed: int, fields: dict[str, str] | None) -> Iterator[Item]:
    mapping = {"question": "question", "answer": "answer"}
    unknown = sorted(set(fields or {}) - {"question", "answer", "solution"})
    if unknown:
        raise ValueError(f"fields: unknown key '{unknown[0]}'; allowed: question, answer, solution")
    mapping.update(fields or {})
    for index, (lineno, record) in enumerate(_jsonl_records(path)):
        where = f"{path}: line {lineno}"
        question = _field(record, (mapping["question"],), where)
        gold = _field(record, (mapping["answer"],), where).strip()
        solution = _field(record, (mapping["solution"],), where) if "solution" in mapping else None
        yield Item(index, question, gold, "math", solution)


GPQA_COLUMNS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")


def gpqa_permutation(seed: int, index: int) -> list[int]:
    """Slot order of (correct, incorrect 1..3) for item `index`: a pure function of (seed, index),
    so a fixed slot for the right answer cannot bias the results and runs reproduce."""
    return [int(p) for p in np.random.default_rng(stable_seed(seed, index)).permutation(len(CHOICE_LETTERS))]


@register_loader("gpqa")
def _gpqa(path: Path, seed: int, fields: dict[str, str] | None) -> Iterator[Item]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in GPQA_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: header row: missing column '{missing[0]}' (GPQA CSV needs {', '.join(GPQA_COLUMNS)})")
        for index, row in enumerate(reader):
            where = f"{path}: row {index + 1}"  # data rows, counting from 1 after the header
            texts = [(row.get(c) or "").strip() for c in GPQA_COLUMNS]
            empty = [c for c, t in zip(GPQA_COLUMNS, texts) if not t]
            if empty:
                raise ValueError(f"{where}: empty column '{empty[0]}'")
            options = texts[1:]  # options[0] is the correct one
            order = gpqa_permutation(seed, index)
            lines = [f"{letter}) {options[slot]}" for letter, slot in zip(CHOICE_LETTERS, order)]
            gold = CHOICE_LETTERS[order.index(0)]
            yield Item(index, texts[0] + "\n\n" + "\n".join(lines), gold, "choice", row.get("Explanation") or None)


# --- entry point -----------------------------------------------------------------------------
def load_benchmark(name: str, path: str, *, seed: int = 0, fields: dict[str, str] | None = None,
                   limit: int | None = None) -> list[Item]:
    """The items of benchmark `name` read from the local file `path` (the first `limit` if given).
    `seed` fixes the GPQA option order; `fields` maps question/answer(/solution) for `jsonl`."""
    if name not in LOADERS:
        raise ValueError(f"unknown benchmark '{name}'; choose from {', '.join(BENCHMARKS)}")
    if fields and name != "jsonl":
        raise ValueError(f"fields apply to the generic 'jsonl' benchmark only, not '{name}'")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    file = Path(path)
    if not file.is_file():
        # Hugging Face hub names are not resolved here: export the split to JSONL/CSV (docs/reasoning.md).
        raise ValueError(f"{path}: no such file (benchmarks are read from local JSONL, or CSV for gpqa)")
    items = []
    for item in LOADERS[name](file, seed, fields):
        if limit is not None and len(items) >= limit:
            break
        items.append(item)
    if not items and limit != 0:
        raise ValueError(f"{path}: no items in the file")
    return items


def parse_fields(text: str | None) -> dict[str, str] | None:
    """`question=F,answer=G` -> {"question": "F", "answer": "G"}."""
    if not text:
        return None
    mapping = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"--fields: expected question=FIELD,answer=FIELD, got '{part}'")
        mapping[key.strip()] = value.strip()
    return mapping
