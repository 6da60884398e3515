"""What one training iteration logs about its rollout and its advantages (TensorBoard `perf/`,
`rollout/`, `reward/`, the envs' own episode metrics, `adv/`)."""
from __future__ import annotations

import numpy as np
import torch

from mas.orchestration.matchmaking import GameSlot
from mas.orchestration.rollout import RolloutStats
from mas.records import Episode, TurnBatch


def rollout_metrics(episodes: list[Episode], stats: RolloutStats, games: list[GameSlot], agents: set[str]) -> dict[str, float]:
    """Speed, invalid moves, the mean return of each seat the run's agents played, the team's
    accuracy (workflows), each game's mean return (a mixture) and each env's episode metrics."""
    env = games[0].env
    metrics: dict[str, float] = {
        "perf/rollout_s": stats.seconds,
        "perf/games_per_s": stats.episodes / max(stats.seconds, 1e-9),
        "perf/generated_tokens_per_s": stats.generated_tokens / max(stats.seconds, 1e-9),
        "rollout/invalid_rate": stats.invalid_turns / max(stats.turns, 1),
        "rollout/turns": stats.turns,
    }
    for seat in range(env.num_seats):
        own = [ep.returns[seat] for ep in episodes if ep.seat_players[seat] in agents]
        if own:
            metrics[f"reward/seat{seat}"] = float(np.mean(own))
    if env.team:
        metrics["reward/team_accuracy"] = float(np.mean([ep.outcomes[0] == "win" for ep in episodes]))
    for slot in games:
        played = [ep for ep in episodes if ep.env == slot.env.id]
        if len(games) > 1:
            metrics[f"reward/{slot.env.id}/mean_game_return"] = float(np.mean(
                [r for ep in played for p, r in zip(ep.seat_players, ep.game_returns) if p in agents] or [0.0]))
        metrics.update(slot.env.episode_metrics([ep.info for ep in played]))
    return metrics


def advantage_stats(batch: TurnBatch, advantages: torch.Tensor) -> dict[str, float]:
    """Mean and std of the advantages per agent and per seat (adv/...)."""
    out = {}
    for values, prefix in ((batch.agent, "adv/"), (batch.seat.tolist(), "adv/seat")):
        for key in sorted(set(values)):
            picked = advantages[[i for i, v in enumerate(values) if v == key]].double()
            out[f"{prefix}{key}/mean"] = float(picked.mean())
            out[f"{prefix}{key}/std"] = float(picked.std(unbiased=False))
    return out
