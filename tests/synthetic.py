"""Hand-built turns for trainer tests: token ids drawn at random, prompts that extend each seat's
previous prompt + response exactly as the rollout builds them."""
from __future__ import annotations

import random

from mas.records import Turn


def episode_turns(rng: random.Random, episode: int, plan: list[tuple[str, str, int]], eos: int, vocab: int,
                  group: int | None = None) -> list[Turn]:
    """Turns of one episode; plan = (agent, policy, seat) per step."""
    turns: list[Turn] = []
    count: dict[int, int] = {}
    for step, (agent, policy, seat) in enumerate(plan):
        earlier = [t for t in turns if t.seat == seat]
        new = [rng.randrange(10, vocab) for _ in range(rng.randint(2, 5))]
        prompt = (earlier[-1].prompt_ids + earlier[-1].response_ids if earlier else []) + new
        response = [rng.randrange(10, vocab) for _ in range(rng.randint(1, 3))] + [eos]
        turns.append(Turn(episode_id=episode, group_id=episode // 2 if group is None else group, env="w",
                          agent=agent, policy=policy, seat=seat, turn=count.get(seat, 0), step=step,
                          prompt_ids=prompt, response_ids=response, logprobs=[0.0] * len(response),
                          temperature=1.0))
        count[seat] = count.get(seat, 0) + 1
    return turns
