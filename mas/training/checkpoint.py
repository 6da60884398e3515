"""Atomic checkpoints in the run folder (docs/architecture.md, "Run folder").

A step is written into a hidden temporary folder, renamed to `step-N`, and only then marked with
`step-N/COMMITTED`; `final` is a symlink to the newest committed step. A kill at any moment leaves
either a committed step or one without the marker, which resume ignores and the next save replaces."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

_STEP = re.compile(r"^step-(\d+)$")
COMMITTED = "COMMITTED"


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file that readers take as a marker (summary.json ends a run): a kill mid-write
    leaves the old file or none, never a truncated one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def staging_dir(run_dir: Path, step: int) -> Path:
    path = Path(run_dir) / f".step-{step}.partial"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / "trainer_state").mkdir()
    return path


def commit(run_dir: Path, step: int, staged: Path) -> Path:
    run_dir = Path(run_dir)
    target = run_dir / f"step-{step}"
    if target.exists():  # an uncommitted leftover of an interrupted save
        shutil.rmtree(target)
    os.replace(staged, target)
    marker = target / COMMITTED
    with open(marker, "w") as f:
        f.write(f"{step}\n")
        f.flush()
        os.fsync(f.fileno())
    link = run_dir / "final"
    tmp_link = run_dir / ".final.tmp"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    tmp_link.symlink_to(target.name)
    os.replace(tmp_link, link)
    return target


def committed_steps(run_dir: Path) -> list[int]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    steps = []
    for entry in run_dir.iterdir():
        m = _STEP.match(entry.name)
        if m and (entry / COMMITTED).exists():
            steps.append(int(m.group(1)))
    return sorted(steps)


def latest_committed(run_dir: Path) -> Path | None:
    steps = committed_steps(run_dir)
    return Path(run_dir) / f"step-{steps[-1]}" if steps else None


def prune(run_dir: Path, keep_last: int) -> None:
    """Delete all but the newest `keep_last` committed steps (0 keeps all)."""
    if keep_last <= 0:
        return
    for step in committed_steps(run_dir)[:-keep_last]:
        shutil.rmtree(Path(run_dir) / f"step-{step}", ignore_errors=True)
