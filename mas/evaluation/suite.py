"""Evaluation suites: one player (a checkpoint or a bot) against games x opponents x seats, one
table, one JSON, seeded so that the same suite and seed give identical results.

A suite comes from a YAML file (`load_suite`, format in docs/evaluation.md) or from `mas eval`'s
--env/--opponents/--games (`single_env_suite`). Every env and bot is built before the first game
(`build`), so a bad env, bot or seat is reported as one line before anything runs.
"""
from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mas.agents import bots
from mas.evaluation.games import MatchResult, play_matches
from mas.evaluation.loading import trained_setup
from mas.games import make as make_env
from mas.orchestration.rollout import RolloutEngine
from mas.seeding import stable_seed

__all__ = ["Match", "Row", "Suite", "SuiteEntry", "build", "cfr_notes", "format_rows", "load_suite", "results_json",
           "run", "single_env_suite"]

SUITE_KEYS = ("player", "policy", "games", "seed", "seats", "envs")
ENTRY_KEYS = ("env", "opponents", "games", "seats", "exact")


@dataclass
class SuiteEntry:
    env: Any  # an env id or a `mas.games.make` mapping
    opponents: list[str]
    games: int  # per opponent, split evenly across `seats`
    seats: list[int] | None  # the player's seats; None: all of them
    exact: bool = False  # evaluate exactly over the whole game tree (opponents: exact-capable bots)


@dataclass
class Suite:
    entries: list[SuiteEntry]
    seed: int = 0
    player: str | None = None  # a bot spec
    policy: str | None = None  # a checkpoint folder
    source: str = "command line"


@dataclass
class Match:
    env_id: str
    opponent: str
    engine: RolloutEngine
    player: Any  # an Agent or a bot
    bot: Any  # the opponent
    num_seats: int
    seats: list[int]
    games: int
    seed: int
    poker: bool


@dataclass
class Row:
    env_id: str
    opponent: str
    result: MatchResult
    poker: bool


# ---------------------------------------------------------------------------------------------
# Reading


def _int(where: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}: an integer >= {minimum}, got {value!r}")
    return value


def _seats(where: str, value: Any) -> list[int] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: a non-empty list of seats, e.g. [0, 1], got {value!r}")
    seats = [_int(where, s, 0) for s in value]
    if len(set(seats)) != len(seats):
        raise ValueError(f"{where}: seats appear twice in {value!r}")
    return seats


def _keys(where: str, data: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: a mapping with keys {', '.join(allowed)}, got {type(data).__name__}")
    for key in data:
        if key not in allowed:
            raise ValueError(f"{where}: unknown key '{key}' (allowed: {', '.join(allowed)})")


def load_suite(path: str) -> Suite:
    """A suite from YAML; any mistake is one ValueError line that names the file and the key."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise ValueError(f"--suite: cannot read '{path}': {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"suite {path}: not valid YAML: {str(err).splitlines()[0]}") from None
    where = f"suite {path}"
    _keys(where, data, SUITE_KEYS)
    if not data.get("envs") or not isinstance(data["envs"], list):
        raise ValueError(f"{where}: envs: a non-empty list of {{env: ..., opponents: [...]}}")
    games = _int(f"{where}: games", data.get("games", 100), 1)
    seats = _seats(f"{where}: seats", data.get("seats"))
    entries = []
    for i, item in enumerate(data["envs"]):
        at = f"{where}: envs[{i}]"
        _keys(at, item, ENTRY_KEYS)
        if "env" not in item:
            raise ValueError(f"{at}: needs 'env' (an env id such as kuhn_poker, or a mapping with 'name')")
        exact = item.get("exact", False)
        if not isinstance(exact, bool):
            raise ValueError(f"{at}: exact: true or false, got {exact!r}")
        opponents = item.get("opponents", [] if exact else None)
        if isinstance(opponents, str):
            opponents = [o.strip() for o in opponents.split(",")]
        if exact and opponents == []:
            pass  # the env's default exact opponents
        elif not opponents or not isinstance(opponents, list):
            raise ValueError(f"{at}: opponents: a non-empty list of bots, e.g. [random, cfr]")
        if len(set(map(str, opponents))) != len(opponents):
            raise ValueError(f"{at}: opponents: a bot appears twice in {opponents}")
        for spec in opponents if not exact else []:  # exact rows check theirs against the env
            try:
                bots.check_spec(spec)
            except ValueError as err:
                raise ValueError(f"{at}: opponents: {err}") from None
        entries.append(SuiteEntry(item["env"], [str(o).strip() for o in opponents],
                                  _int(f"{at}: games", item.get("games", games), 1),
                                  _seats(f"{at}: seats", item["seats"]) if "seats" in item else seats, exact))
    player, policy = data.get("player"), data.get("policy")
    if player is not None and policy is not None:
        raise ValueError(f"{where}: give 'player' (a bot) or 'policy' (a checkpoint), not both")
    if player is not None and not all(e.exact for e in entries):
        try:
            bots.check_spec(player)
        except ValueError as err:
            raise ValueError(f"{where}: player: {err}") from None
    return Suite(entries, _int(f"{where}: seed", data.get("seed", 0), 0),
                 str(player) if player is not None else None, str(policy) if policy is not None else None, str(path))


def single_env_suite(env: str, opponents: str | None, games: int, seed: int, exact: bool = False) -> Suite:
    """The suite of a plain `mas eval --env E --opponents A,B --games N` (with --exact: the
    opponents default to the env's exact ones, and games are not played)."""
    if exact:
        specs = [o.strip() for o in (opponents or "").split(",") if o.strip()]
        return Suite([SuiteEntry(env, specs, 1, None, exact=True)], seed)
    opponents = opponents or "random"
    specs = [o.strip() for o in opponents.split(",") if o.strip()]
    if not specs:
        raise ValueError("--opponents: at least one bot, e.g. random,mcts:100")
    if len(set(specs)) != len(specs):
        raise ValueError(f"--opponents: a bot appears twice in '{opponents}'")
    for spec in specs:
        bots.check_spec(spec)
    if games <= 0:
        raise ValueError(f"--games must be > 0, got {games}")
    return Suite([SuiteEntry(env, specs, games, None)], seed)


# ---------------------------------------------------------------------------------------------
# Running


def row_seed(seed: int, env_id: str, opponent: str) -> int:
    """A row's seed depends on its names, not its position: adding a row changes no other row."""
    return stable_seed(seed, zlib.crc32(env_id.encode()), zlib.crc32(opponent.encode()))


def build(suite: Suite, player, policy_dir: Path | None = None) -> list[Match]:
    """Every env, engine and bot of the suite. `player` is a bot spec (str), a LoadedPolicy, or a
    function returning one: called once the envs and opponents are checked, so a mistake there costs
    no model load. A checkpoint in a run folder plays each env it was trained on as in training
    (the run config's prompt and history), other envs with their defaults."""
    checked, seen = [], set()
    from_file = suite.source != "command line"
    for i, entry in enumerate(suite.entries):
        at = f"suite {suite.source}: envs[{i}]" if from_file else "--env"
        try:
            env = make_env(entry.env)
        except ValueError as err:
            raise ValueError(f"{at}: {err}") from None
        trained = trained_setup(policy_dir, env.id)[0] if policy_dir is not None else None
        env = trained or env
        if env.id in seen:
            raise ValueError(f"{at}: env '{env.id}' appears twice; give each an 'id'")
        seen.add(env.id)
        seats = entry.seats if entry.seats is not None else list(range(env.num_seats))
        if any(s >= env.num_seats for s in seats):
            raise ValueError(f"{at}: seats {seats}: '{env.id}' has seats 0..{env.num_seats - 1}")
        opponents = {spec: _bot(at if from_file else "--opponents", spec, env) for spec in entry.opponents}
        measured = _bot(at if from_file else "--player", player, env) if isinstance(player, str) else None
        checked.append((env, entry, seats, opponents, measured))
    if callable(player):
        player = player()
    matches = []
    for env, entry, seats, opponents, measured in checked:
        if measured is not None:
            engine = RolloutEngine(env, {}, {})
        else:
            engine, measured = RolloutEngine(env, *player.engine_parts()), player.agent
        poker = env.pays_chips
        for spec, bot in opponents.items():
            matches.append(Match(env.id, spec, engine, measured, bot, env.num_seats, seats, entry.games,
                                 row_seed(suite.seed, env.id, spec), poker))
    return matches


def _bot(at: str, spec: str, env):
    try:
        return bots.make(spec, env)
    except ValueError as err:
        raise ValueError(f"{at}: {err}") from None


def run(matches: list[Match]) -> list[Row]:
    return [Row(m.env_id, m.opponent, play_on_seats(m), m.poker) for m in matches]


def play_on_seats(m: Match) -> MatchResult:
    """The match, with the games split evenly over `m.seats`."""
    return play_matches(m.engine, m.player, m.bot, m.num_seats, m.games, m.seed, seats=m.seats)[0]


# ---------------------------------------------------------------------------------------------
# Reporting


def format_rows(rows: list[Row]) -> str:
    """One table, a row per env x opponent: win, draw, loss, invalid, non-loss with 95% Wilson
    intervals; poker rows also the player's mean chips per game with a 95% interval."""
    chips = any(r.poker for r in rows)
    env_w = max([len("env")] + [len(r.env_id) for r in rows])
    opp_w = max([len("opponent")] + [len(r.opponent) for r in rows])
    header = (f"{'env':<{env_w}} {'opponent':<{opp_w}} {'games':>5}  {'win':>19}  {'draw':>19}  {'loss':>19}  "
              f"{'invalid':>7}  {'non-loss':>19}" + (f"  {'mean chips':>22}" if chips else ""))
    lines = [header, "-" * len(header)]

    def cell(s: dict, key: str) -> str:
        lo, hi = s[f"{key}_ci"]
        return f"{s[key]:.3f} [{lo:.3f},{hi:.3f}]"

    for r in rows:
        s = r.result.overall
        line = (f"{r.env_id:<{env_w}} {r.opponent:<{opp_w}} {s['games']:>5}  {cell(s, 'win'):>19}  "
                f"{cell(s, 'draw'):>19}  {cell(s, 'loss'):>19}  {s['invalid']:>7.3f}  {cell(s, 'non_loss'):>19}")
        if r.poker:
            lo, hi = s["mean_return_ci"]
            line += f"  {s['mean_return']:>+7.3f} [{lo:+.3f},{hi:+.3f}]"
        lines.append(line)
    return "\n".join(lines)


def results_json(rows: list[Row]) -> dict:
    """{env: {opponent: win/draw/loss/invalid fractions, intervals, mean_return, per_seat}}."""
    out: dict[str, dict] = {}
    for r in rows:
        out.setdefault(r.env_id, {})[r.opponent] = r.result.to_json()
    return out


def cfr_notes(matches: list[Match]) -> dict[str, dict]:
    """The CFR policies that took part, per env: iterations and exploitability (OpenSpiel)."""
    notes = {}
    for m in matches:
        for side in (m.bot, m.player):
            if isinstance(side, bots.CFRBot):
                notes[m.env_id] = {"iterations": side.iterations, "exploitability": side.exploitability}
    return notes
