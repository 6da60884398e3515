"""Turns -> training sequences. A seat's next prompt extends its previous prompt + response, so all
turns of one trajectory fit in one sequence (its last prompt + last response) and one forward pass
scores every response token of that seat: the cost is linear in the conversation, not quadratic.
Where a prompt does not extend the previous turn, a new sequence starts."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property

from mas.records import Turn


@dataclass
class PackedSequence:
    input_ids: list[int] = field(default_factory=list)
    target_pos: list[int] = field(default_factory=list)  # positions of response tokens in input_ids
    target_row: list[int] = field(default_factory=list)  # the turn (index into the turns given) of each
    behaviour_logp: list[float] = field(default_factory=list)
    allowed: list[list[int] | None] = field(default_factory=list)
    temperature: list[float] = field(default_factory=list)

    @cached_property
    def identity(self) -> tuple:
        """What makes two packed sequences train identically (ids, response positions, sampling);
        read once packing is done."""
        return (tuple(self.input_ids), tuple(self.target_pos), tuple(self.temperature),
                tuple(None if a is None else tuple(a) for a in self.allowed))

    def add_response(self, row: int, turn: Turn) -> None:
        start = len(self.input_ids)
        self.input_ids.extend(turn.response_ids)
        self.target_pos.extend(range(start, start + len(turn.response_ids)))
        self.target_row.extend([row] * len(turn.response_ids))
        self.behaviour_logp.extend(turn.logprobs)
        self.allowed.extend(turn.allowed_ids or [None] * len(turn.response_ids))
        self.temperature.extend([turn.temperature] * len(turn.response_ids))


def pack_turns(turns: list[Turn]) -> list[PackedSequence]:
    """One sequence per trajectory (episode, seat, agent) where prompts extend; in first-seen order."""
    trajectories: dict[tuple, list[int]] = defaultdict(list)
    for row, t in enumerate(turns):
        trajectories[(t.episode_id, t.seat, t.agent)].append(row)
    sequences: list[PackedSequence] = []
    for rows in trajectories.values():
        rows.sort(key=lambda r: turns[r].turn)
        current: PackedSequence | None = None
        for row in rows:
            turn = turns[row]
            if not turn.response_ids:
                continue
            known = len(current.input_ids) if current else 0
            if current is None or turn.prompt_ids[:known] != current.input_ids:
                current = PackedSequence(input_ids=list(turn.prompt_ids))
                sequences.append(current)
            else:
                current.input_ids.extend(turn.prompt_ids[known:])
            current.add_response(row, turn)
    return sequences


def micro_batches(sequences: list[PackedSequence], max_tokens: int) -> list[list[PackedSequence]]:
    """Split into groups whose padded size (count x longest) stays within `max_tokens`."""
    batches: list[list[PackedSequence]] = []
    current: list[PackedSequence] = []
    longest = 0
    for seq in sequences:
        n = len(seq.input_ids)
        if current and max(longest, n) * (len(current) + 1) > max_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(seq)
        longest = max(longest, n)
    if current:
        batches.append(current)
    return batches
