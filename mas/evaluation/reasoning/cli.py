"""`mas score --benchmark NAME --data FILE --responses FILE.jsonl [--json OUT]`: score responses
produced anywhere against a local benchmark file. Responses are JSONL lines `{"index": i,
"response": "..."}`; several lines per index are several samples. Lines that also carry a `system`
key (as `mas eval --benchmark --responses-out` writes) are scored per system."""
from __future__ import annotations

import json
from pathlib import Path

from mas.evaluation.reasoning.loaders import load_benchmark, parse_fields
from mas.evaluation.reasoning.scoring import score_responses


def read_responses(path: str, valid: set[int]) -> dict[str | None, list[tuple[int, str]]]:
    """(index, response) pairs from a JSONL file, grouped by their optional `system` key."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"--responses {path}: no such file")
    groups: dict[str | None, list[tuple[int, str]]] = {}
    with open(file, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}: line {lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(record, dict) or "index" not in record or "response" not in record:
                raise ValueError(f'{where}: expected {{"index": i, "response": "..."}}')
            index, response = record["index"], record["response"]
            if isinstance(index, bool) or not isinstance(index, int):
                raise ValueError(f"{where}: 'index' must be an integer, got {index!r}")
            if index not in valid:
                raise ValueError(f"{where}: index {index} is out of range (the benchmark has items "
                                 f"{min(valid)}..{max(valid)})")
            if not isinstance(response, str):
                raise ValueError(f"{where}: 'response' must be a string, got {type(response).__name__}")
            system = record.get("system")
            groups.setdefault(None if system is None else str(system), []).append((index, response))
    if not groups:
        raise ValueError(f"--responses {path}: no responses in the file")
    return groups


def run_score(args) -> int:
    items = load_benchmark(args.benchmark, args.data, seed=args.seed, fields=parse_fields(args.fields))
    groups = read_responses(args.responses, {item.index for item in items})
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers must be >= 0, got {args.workers}")
    if args.timeout <= 0:
        raise ValueError(f"--timeout must be > 0 seconds, got {args.timeout}")
    reports = {system: score_responses(items, pairs, workers=args.workers, timeout=args.timeout)
               for system, pairs in groups.items()}
    header = f"{args.benchmark} ({args.data}), responses {args.responses}"
    print(header + (f", GPQA option seed {args.seed}" if args.benchmark == "gpqa" else ""))
    for system, report in reports.items():
        if system is not None:
            print(f"\n[{system}]")
        print(report.format())
    if args.json_path:
        out = {"benchmark": args.benchmark, "data": str(args.data), "responses_path": str(args.responses),
               "seed": args.seed}
        if list(reports) == [None]:
            out.update(reports[None].to_json())
        else:
            out["systems"] = {system: report.to_json() for system, report in reports.items()}
        Path(args.json_path).write_text(json.dumps(out, indent=1))
        print(f"report written to {args.json_path}")
    return 0
