"""One way to derive seeds: every RNG stream in a run is a pure function of integer parts
(run seed, iteration, slot, ...), so runs and their resumed twins replay exactly."""
from __future__ import annotations

import numpy as np


def stable_seed(*parts: int) -> int:
    """A 32-bit seed from integer parts, stable across processes and Python versions."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


# Streams: the second part of a run's seeds, so that each use of the run seed draws apart from the
# others. Their values are part of every recorded result: changing one changes what a seed gives.
ROLLOUT_STREAM = 1  # (run seed, iteration, ROLLOUT_STREAM): the iteration's sampling
JOINT_UPDATE_STREAM = 2  # (run seed, iteration, ...): mini-batch order of a joint update
SEQUENTIAL_UPDATE_STREAM = 3  # (run seed, iteration, ...): a sequential update's random orders
EPISODE_RNG_STREAM = 7  # (episode seed, ...): the bots' moves within an episode
POOL_STREAM = 77  # (pool seed, iteration, ...): which frozen opponent an iteration meets
SYSTEM_SAMPLE_STREAM = 11  # (benchmark seed, ..., k): the k-th sample of a multi-agent system
AGENT_MOVE_STREAM = 1  # (play seed, ..., move): the agent's sampling in `mas play`
EVAL_STREAM = 999  # (run seed, EVAL_STREAM, iteration): evaluation during training
FINAL_EVAL_STREAM = 4242  # (run seed, FINAL_EVAL_STREAM): the final evaluation

# Episode ids of evaluation games, far above any training iteration's, so they never share a
# group with training episodes.
MATCH_EPISODE_IDS = 10_000_000  # games against fixed opponents
EVAL_EPISODE_IDS = 20_000_000  # evaluation during and after training (team, self-play)
ATTACK_EPISODE_IDS = 30_000_000  # attack evaluation
