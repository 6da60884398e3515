"""CFR average policies for Kuhn and Leduc poker: solved once with OpenSpiel's C++ CFR and cached.

The `cfr` bot (docs/algorithms.md, "Game evaluation") plays the average policy of vanilla CFR
(`pyspiel.CFRSolver`) after a fixed number of iterations. Solving Leduc takes seconds, so the policy
is computed once per machine and kept under the mas cache (`$MAS_CACHE`, default `~/.cache/mas`)
as `cfr/<game>-<iterations>.json`: information-state string -> [[action id, probability], ...],
with the policy's exploitability (OpenSpiel's NashConv / 2, in chips) measured when it was solved.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyspiel

from mas.agents.model_cache import cache_dir

__all__ = ["CFR_ITERATIONS", "CFRPolicy", "cache_path", "check_game", "exploitability", "load_or_solve", "solve"]

# Iterations per game: Kuhn reaches exploitability ~0.001 (< 0.01 required) in well under a second;
# Leduc reaches ~0.012 in ~12 s of one core (3,000 iterations would give ~0.005 in ~40 s).
CFR_ITERATIONS = {"kuhn_poker": 1000, "leduc_poker": 1000}
_FORMAT = 1  # bump when the cache layout changes, so old files are solved again

_loaded: dict[Path, CFRPolicy] = {}  # in-process: every cfr bot of a run shares one table


@dataclass(frozen=True)
class CFRPolicy:
    game: str
    iterations: int
    exploitability: float
    solve_seconds: float  # when it was solved, possibly by an earlier process
    table: dict[str, list[tuple[int, float]]]
    source: str  # "solved" (this call ran CFR) or "cache" (read from `path`)
    path: Path


def cache_path(game: str, iterations: int) -> Path:
    return cache_dir() / "cfr" / f"{game}-{iterations}.json"


def check_game(game: pyspiel.Game) -> str:
    """The game's short name when CFR can serve it (Kuhn or Leduc, default 2-player), else a
    one-line ValueError."""
    name = game.get_type().short_name
    if name not in CFR_ITERATIONS or game.get_parameters() != pyspiel.load_game(name).get_parameters():
        shown = str(game).removesuffix("()")
        raise ValueError(f"bot 'cfr' plays only kuhn_poker and leduc_poker (2 players, default rules), not '{shown}'")
    return name


def exploitability(game: str, table: dict[str, list[tuple[int, float]]]) -> float:
    """OpenSpiel's exploitability of a tabular policy (mean of the best responses' gains)."""
    return float(pyspiel.exploitability(pyspiel.load_game(game), pyspiel.TabularPolicy(table)))


def solve(game: str, iterations: int) -> tuple[dict[str, list[tuple[int, float]]], float]:
    """Run CFR for `iterations` and return the average policy as a table and the seconds it took."""
    start = time.perf_counter()
    solver = pyspiel.CFRSolver(pyspiel.load_game(game))
    for _ in range(iterations):
        solver.evaluate_and_update_policy()
    table = {info: [(int(a), float(p)) for a, p in pairs]
             for info, pairs in solver.tabular_average_policy().policy_table().items()}
    return table, time.perf_counter() - start


def _read(path: Path, game: str, iterations: int) -> CFRPolicy | None:
    try:
        data = json.loads(path.read_text())
        if data["format"] != _FORMAT or data["game"] != game or data["iterations"] != iterations:
            return None
        table = {info: [(int(a), float(p)) for a, p in pairs] for info, pairs in data["policy"].items()}
        return CFRPolicy(game, iterations, float(data["exploitability"]), float(data["solve_seconds"]), table,
                         "cache", path)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or damaged: solve again


def _write(path: Path, payload: dict) -> None:
    """Atomically: a reader sees the old file or the whole new one, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is shared like the model cache
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_or_solve(game: str, iterations: int | None = None, *, memo: bool = True) -> CFRPolicy:
    """The cached CFR average policy of `game`; solved (and cached) on first use.

    memo=False skips the in-process copy and reads the cache file itself."""
    if game not in CFR_ITERATIONS:
        raise ValueError(f"bot 'cfr' plays only kuhn_poker and leduc_poker, not '{game}'")
    iterations = int(iterations or CFR_ITERATIONS[game])
    path = cache_path(game, iterations)
    if memo and path in _loaded:
        return _loaded[path]
    policy = _read(path, game, iterations)
    if policy is None:
        table, seconds = solve(game, iterations)
        value = exploitability(game, table)
        if not math.isfinite(value):
            raise ValueError(f"cfr: exploitability of the {game} policy is {value}")
        _write(path, {"format": _FORMAT, "game": game, "iterations": iterations, "solver": "pyspiel.CFRSolver",
                      "exploitability": value, "solve_seconds": seconds, "policy": table})
        policy = CFRPolicy(game, iterations, value, seconds, table, "solved", path)
    _loaded[path] = policy
    return policy
