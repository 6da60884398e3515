"""`mas arena CONFIG [--jobs N] [--only NAME,...] [--report-only] [key=value ...]`."""
from __future__ import annotations

from collections.abc import Callable

from mas.arena.collect import collect_run
from mas.arena.report import aggregate, markdown, write_report
from mas.arena.runner import run_all
from mas.arena.spec import ArenaError, ArenaSpec, load_spec


def collect_all(spec: ArenaSpec) -> dict[str, list[dict]]:
    """label -> the finished runs of that entry (every seed of the arena file)."""
    runs: dict[str, list[dict]] = {}
    for plan in spec.runs:
        run = collect_run(plan.run_dir, spec.curve, spec.spike_factor)
        if run is not None:
            runs.setdefault(plan.label, []).append({"seed": plan.seed, **run})
    return runs


def run_arena(config: str, overrides: list[str] | None = None, *, jobs: int = 1, only: str | None = None,
              report_only: bool = False, echo: Callable[[str], None] = print) -> int:
    """Train what is missing (unless `report_only`), then write OUT/arena.md, arena.json and
    curves.png and print the table. Exit status: 0 all selected runs finished, 1 some failed or
    none to report, 130 interrupted; mistakes in the arena file raise ArenaError."""
    if jobs < 1:
        raise ArenaError(f"--jobs: at least 1, got {jobs}")
    spec = load_spec(config, overrides)
    labels = list(spec.entries)
    if only:
        chosen = [x.strip() for x in only.split(",") if x.strip()]
        unknown = [x for x in chosen if x not in spec.entries]
        if unknown or not chosen:
            raise ArenaError(f"--only: unknown entry '{unknown[0] if unknown else only}'; entries: {', '.join(labels)}")
        labels = chosen
    failed = False
    if not report_only:
        plans = [p for p in spec.runs if p.label in labels]
        echo(f"arena {spec.name}: {len(labels)} entries x {len(spec.seeds)} seeds = {len(plans)} runs of "
             f"{spec.base}, {jobs} at a time, into {spec.out}")
        outcome = run_all(spec, plans, jobs, echo)
        if outcome.interrupted:
            return 130
        failed = bool(outcome.failed)
        if failed:
            echo(f"{len(outcome.failed)} run(s) failed (logs: RUN/train.log): {', '.join(outcome.failed)}; "
                 "the same command tries them again")
    runs = collect_all(spec)
    if not runs:
        echo(f"no finished runs under {spec.out} yet")
        return 1
    result = aggregate(spec, runs)
    paths = write_report(result, spec.out)
    echo("")
    echo(markdown(result))
    echo(f"({result['interval']})")
    echo(f"wrote {paths['markdown']}, {paths['json']}, {paths['png']}")
    return 1 if failed else 0
