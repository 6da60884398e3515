"""Run an arena's trainings: each (entry, seed) is one `mas train` subprocess writing into its own
run folder, `jobs` at a time. A run with a summary.json is finished and skipped; one with a
committed checkpoint continues from it (`resume=DIR`); one that died before its first checkpoint
starts again. Each attempt's wall time goes to RUN/arena_time.json, its output to RUN/train.log."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mas.arena.collect import TIME_FILE, read_json
from mas.arena.spec import ArenaSpec, RunPlan, flatten
from mas.training import checkpoint

LOG_FILE = "train.log"
_KEEP = {LOG_FILE, TIME_FILE}  # what a restart from scratch leaves in the folder


def run_state(run_dir: Path) -> tuple[str, Path | None]:
    """("finished", None) | ("resume", newest committed step) | ("fresh", None)."""
    if (run_dir / "summary.json").is_file():
        return "finished", None
    latest = checkpoint.latest_committed(run_dir)
    return ("resume", latest) if latest is not None else ("fresh", None)


def config_drift(run_dir: Path, cfg) -> str | None:
    """The first setting in which a run's saved config.yaml differs from `cfg` (resume aside)."""
    from mas.config import to_yaml

    try:
        old = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    new = yaml.safe_load(to_yaml(cfg))
    a, b = (flatten({k: v for k, v in d.items() if k != "resume"}) for d in (old, new))
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            return f"{key} is {a.get(key)!r} there, {b.get(key)!r} now"
    return None


def train_command(spec: ArenaSpec, plan: RunPlan, resume: bool) -> list[str]:
    extra = [f"resume={json.dumps(str(plan.run_dir))}"] if resume else []
    return [sys.executable, "-m", "mas.cli", "train", spec.base, *plan.overrides, *extra, "--no-progress"]


def clear_partial(run_dir: Path) -> None:
    """A run that died before its first checkpoint: remove what it wrote (mas train refuses a
    folder that holds a config.yaml), keeping the arena's log and timing files."""
    for path in run_dir.iterdir():
        if path.name in _KEEP:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def record_time(run_dir: Path, seconds: float, returncode: int, resumed_from: Path | None) -> dict:
    """Append this attempt to RUN/arena_time.json; `seconds` sums every attempt of the run."""
    path = run_dir / TIME_FILE
    timing = read_json(path) or {"attempts": []}
    timing["attempts"].append({"seconds": round(seconds, 3), "returncode": returncode,
                               "resumed_from": resumed_from.name if resumed_from else None,
                               "ended": time.strftime("%Y-%m-%dT%H:%M:%S")})
    timing["seconds"] = round(sum(a["seconds"] for a in timing["attempts"]), 3)
    checkpoint.write_text_atomic(path, json.dumps(timing, indent=1) + "\n")
    return timing


def _last_line(path: Path) -> str:
    try:
        lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


@dataclass
class _Running:
    number: int
    plan: RunPlan
    process: subprocess.Popen
    log: object
    started: float
    resumed_from: Path | None


@dataclass
class Outcome:
    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False


def run_all(spec: ArenaSpec, plans: list[RunPlan], jobs: int = 1, echo: Callable[[str], None] = print,
            poll_seconds: float = 0.2) -> Outcome:
    """Train every plan that has not finished, `jobs` at a time, printing one line per start and end."""
    outcome, total = Outcome(), len(plans)
    queue: deque = deque()
    for number, plan in enumerate(plans, 1):
        name = f"[{number}/{total}] {plan.label} seed {plan.seed}"
        state, latest = run_state(plan.run_dir)
        if state != "fresh":
            drift = config_drift(plan.run_dir, plan.config)
            if drift:
                outcome.warnings.append(f"{plan.run_dir}: trained with other settings ({drift}); "
                                        "delete the folder to train it again")
                echo(f"warning: {outcome.warnings[-1]}")
        if state == "finished":
            outcome.skipped.append(str(plan.run_dir))
            echo(f"{name}: finished earlier, skipped")
        else:
            queue.append((number, plan, latest))
    todo, durations = len(queue), []
    running: list[_Running] = []

    def start(number: int, plan: RunPlan, latest: Path | None) -> None:
        plan.run_dir.mkdir(parents=True, exist_ok=True)
        if latest is None:
            clear_partial(plan.run_dir)
        command = train_command(spec, plan, resume=latest is not None)
        log = open(plan.run_dir / LOG_FILE, "a")  # noqa: SIM115 -- open while the child runs, closed in finish()
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        running.append(_Running(number, plan, process, log, time.perf_counter(), latest))
        how = f"resuming from {latest.name}" if latest else "training"
        echo(f"[{number}/{total}] {plan.label} seed {plan.seed}: {how} -> {plan.run_dir}")

    def finish(job: _Running) -> None:
        seconds = time.perf_counter() - job.started
        job.log.close()
        code = job.process.returncode
        record_time(job.plan.run_dir, seconds, code, job.resumed_from)
        durations.append(seconds)
        left = todo - len(durations)
        eta = f"; ETA {_duration(sum(durations) / len(durations) * left / min(jobs, left))}" if left else ""
        name = f"[{job.number}/{total}] {job.plan.label} seed {job.plan.seed}"
        if code == 0 and (job.plan.run_dir / "summary.json").is_file():
            outcome.trained.append(str(job.plan.run_dir))
            echo(f"{name}: done in {_duration(seconds)} ({len(durations)}/{todo} of this session{eta})")
        else:
            outcome.failed.append(str(job.plan.run_dir))
            echo(f"{name}: FAILED (exit {code}) after {_duration(seconds)}{eta}; "
                 f"{job.plan.run_dir / LOG_FILE}: {_last_line(job.plan.run_dir / LOG_FILE)}")

    try:
        while queue or running:
            while queue and len(running) < jobs:
                start(*queue.popleft())
            time.sleep(poll_seconds)
            for job in [j for j in running if j.process.poll() is not None]:
                running.remove(job)
                finish(job)
    except KeyboardInterrupt:
        outcome.interrupted = True
        for job in running:
            job.process.terminate()
        for job in running:
            try:
                job.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                job.process.kill()
                job.process.wait()
            job.log.close()  # the lost work still counts in the run's wall time
            record_time(job.plan.run_dir, time.perf_counter() - job.started, job.process.returncode, job.resumed_from)
        echo("interrupted; run the same command again to resume (finished runs are kept, "
             "the others continue from their last checkpoint)")
    return outcome
