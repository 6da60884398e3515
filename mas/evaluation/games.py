"""Game evaluation: an agent against fixed opponents on both seats, win / draw / loss / invalid with
95% Wilson intervals (docs/algorithms.md, "Game evaluation")."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mas.agents.agent import Agent
from mas.orchestration.rollout import EpisodeSpec, RolloutEngine
from mas.records import Episode
from mas.seeding import MATCH_EPISODE_IDS, stable_seed

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values: list[float], z: float = Z95) -> tuple[float, float, float]:
    """Mean and normal-approximation interval (population spread)."""
    if not values:
        return 0.0, 0.0, 0.0
    arr = np.asarray(values, dtype=np.float64)
    half = z * arr.std(ddof=1) / math.sqrt(len(arr)) if len(arr) > 1 else 0.0
    return float(arr.mean()), float(arr.mean() - half), float(arr.mean() + half)


def summarize(results: list[tuple[str, float]]) -> dict:
    """(outcome, game return) per game -> fractions with intervals. An invalid game is also a loss;
    `invalid` reports its share separately. `non_loss` = win + draw."""
    n = len(results)
    outcomes = [o for o, _ in results]
    counts = {
        "win": outcomes.count("win"),
        "draw": outcomes.count("draw"),
        "loss": outcomes.count("loss") + outcomes.count("invalid"),
        "invalid": outcomes.count("invalid"),
    }
    counts["non_loss"] = counts["win"] + counts["draw"]
    summary: dict = {"games": n}
    for key, k in counts.items():
        lo, hi = wilson_interval(k, n)
        summary[key] = k / n if n else 0.0
        summary[f"{key}_ci"] = [lo, hi]
    mean, lo, hi = mean_interval([r for _, r in results])
    summary["mean_return"] = mean
    summary["mean_return_ci"] = [lo, hi]
    return summary


@dataclass
class MatchResult:
    opponent: str
    overall: dict
    per_seat: dict[int, dict]

    def to_json(self) -> dict:
        return {**self.overall, "per_seat": {str(s): v for s, v in self.per_seat.items()}}


def play_matches(
    engine: RolloutEngine,
    player,  # an Agent or a bot: the side being measured
    opponent,  # a bot (or an Agent)
    num_seats: int,
    games: int,
    seed: int,
    first_episode_id: int = MATCH_EPISODE_IDS,
    env=None,  # the game, when the engine plays several; None: the engine's env
    seats: list[int] | None = None,  # the measured side's seats (default: all, in turn)
) -> tuple[MatchResult, list[Episode]]:
    """`games` episodes split evenly across the measured side's seats; opponents fill the others."""
    seats = list(range(num_seats)) if seats is None else list(seats)
    specs = []
    for i in range(games):
        seat = seats[i % len(seats)]
        players = [opponent] * num_seats
        players[seat] = player
        seed_i = stable_seed(seed, i)
        specs.append(EpisodeSpec(episode_id=first_episode_id + i, group_id=first_episode_id + i, seed=seed_i,
                                 players=players, env=env))
    episodes, _ = engine.play(specs, seed=seed)
    by_seat: dict[int, list[tuple[str, float]]] = {s: [] for s in seats}
    for i, ep in enumerate(episodes):
        seat = seats[i % len(seats)]
        by_seat[seat].append((ep.outcomes[seat], ep.game_returns[seat] if ep.game_returns else 0.0))
    everything = [r for rs in by_seat.values() for r in rs]
    result = MatchResult(
        opponent=getattr(opponent, "name", str(opponent)),
        overall=summarize(everything),
        per_seat={s: summarize(rs) for s, rs in by_seat.items()},
    )
    return result, episodes


def format_table(title_to_results: dict[str, dict[str, MatchResult]]) -> str:
    """Rows: player x opponent; columns: win, draw, loss, invalid, non-loss with intervals."""
    header = f"{'player':<18} {'opponent':<10} {'games':>5}  {'win':>17}  {'draw':>17}  {'loss':>17}  {'invalid':>6}  {'non-loss':>17}"
    lines = [header, "-" * len(header)]

    def cell(summary, key):
        lo, hi = summary[f"{key}_ci"]
        return f"{summary[key]:.3f} [{lo:.3f},{hi:.3f}]"

    for player, results in title_to_results.items():
        for opponent, res in results.items():
            s = res.overall
            lines.append(
                f"{player:<18} {opponent:<10} {s['games']:>5}  {cell(s, 'win'):>17}  {cell(s, 'draw'):>17}  "
                f"{cell(s, 'loss'):>17}  {s['invalid']:>6.3f}  {cell(s, 'non_loss'):>17}"
            )
    return "\n".join(lines)


def eval_agent(agent: Agent, temperature: float) -> Agent:
    """The agent as it plays in evaluation: same policy and format, evaluation temperature."""
    from dataclasses import replace

    return replace(agent, sampling=replace(agent.sampling, temperature=temperature))
