"""Evaluation of a workflow (a team of agents on a task): the share of questions the system answers
correctly, with a 95% Wilson interval, on problems drawn from an evaluation-only seed stream."""
from __future__ import annotations

from mas.evaluation.games import wilson_interval
from mas.orchestration.rollout import EpisodeSpec, RolloutEngine
from mas.seeding import EVAL_EPISODE_IDS, stable_seed


def team_accuracy(engine: RolloutEngine, players: list, games: int, seed: int,
                  first_episode_id: int = EVAL_EPISODE_IDS, tasks: list[int] | None = None) -> dict:
    """The share of `games` problems the team answers right: fresh ones, or the task seeds
    `tasks` in turn (a training pool)."""
    specs = [EpisodeSpec(episode_id=first_episode_id + i, group_id=first_episode_id + i,
                         seed=stable_seed(seed, i) if tasks is None else tasks[i % len(tasks)],
                         players=list(players)) for i in range(games)]
    episodes, stats = engine.play(specs, seed=seed)
    correct = sum(ep.outcomes[0] == "win" for ep in episodes)
    lo, hi = wilson_interval(correct, games)
    return {
        "games": games,
        "accuracy": correct / max(games, 1),
        "accuracy_ci": [lo, hi],
        "invalid": stats.invalid_turns / max(stats.turns, 1),
        "turns_per_episode": stats.turns / max(games, 1),
    }


def format_accuracy_table(rows: dict[str, dict]) -> str:
    header = f"{'system':<12} {'problems':>8}  {'accuracy':>21}  {'invalid turns':>13}  {'turns/problem':>13}"
    lines = [header, "-" * len(header)]
    for name, r in rows.items():
        lo, hi = r["accuracy_ci"]
        lines.append(f"{name:<12} {r['games']:>8}  {r['accuracy']:.3f} [{lo:.3f},{hi:.3f}]  "
                     f"{r['invalid']:>13.3f}  {r['turns_per_episode']:>13.2f}")
    return "\n".join(lines)
