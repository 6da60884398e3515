"""Who plays which game in an iteration: the mixture of games (per-game batch shares), groups of
episodes that share a seed, and the share of groups that face each opponent (a bot, a frozen
checkpoint or the run's pool). Deterministic: the same iteration always gives the same specs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mas.orchestration.rollout import EpisodeSpec
from mas.seeding import stable_seed


@dataclass
class GameSlot:
    env: Any
    share: float  # of the iteration's groups
    seats: list  # the training agent on each seat
    opponents: dict[str, Any] = field(default_factory=dict)  # opponent spec -> player


def split_groups(total: int, shares: list[float]) -> list[int]:
    """Groups per game: largest remainders, so the counts add up to `total` exactly."""
    raw = [total * s for s in shares]
    counts = [int(x) for x in raw]
    order = sorted(range(len(shares)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def plan_episodes(slots: list[GameSlot], *, episodes: int, group_size: int, opponent_shares: dict[str, float],
                  run_seed: int, iteration: int, seeds: list[int] | None = None, opening_moves: int = 0,
                  opening_share: float = 1.0) -> list[EpisodeSpec]:
    """Episode specs for one iteration. Within each game, a share of its groups faces each opponent,
    which takes seat (group index mod seats); the rest is self-play, of which the first
    `opening_share` start after `opening_moves` random moves. `seeds`: each group's episode seed (a
    task pool's picks); by default a fresh one per group."""
    groups = episodes // group_size
    specs: list[EpisodeSpec] = []
    g = 0
    for slot, count in zip(slots, split_groups(groups, [s.share for s in slots])):
        faced = []
        for spec, share in opponent_shares.items():
            faced.extend([slot.opponents[spec]] * int(round(share * count)))
        opened = len(faced) + int(round(opening_share * (count - len(faced))))
        for k in range(count):
            players = list(slot.seats)
            if k < len(faced):
                players[k % slot.env.num_seats] = faced[k]
            opening = opening_moves if len(faced) <= k < opened else 0
            for j in range(group_size):
                slot_index = g * group_size + j
                specs.append(EpisodeSpec(episode_id=iteration * episodes + slot_index, group_id=iteration * groups + g,
                                         seed=stable_seed(run_seed, iteration, g) if seeds is None else seeds[g],
                                         players=players, env=slot.env, opening_moves=opening))
            g += 1
    return specs
