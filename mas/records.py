"""The data that flows between the layers: one `Turn` per model or bot move, `Episode` per game,
and the columnar `TurnBatch` the estimators and trainers consume (docs/architecture.md, "Contracts")."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch


@dataclass
class Turn:
    """One move of one seat. Token fields hold exactly what was sampled (never re-tokenized text)."""

    episode_id: int
    group_id: int
    env: str
    agent: str
    policy: str
    seat: int
    turn: int  # n-th turn of this seat in the episode, from 0
    step: int  # move index in the whole episode
    prompt_ids: list[int] = field(default_factory=list)
    response_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)  # behaviour policy, one per response token
    temperature: float = 1.0
    reward: float = 0.0
    valid: bool = True
    text: str = ""
    # Constrained decoding: for each response token, the token ids that were allowed there
    # (None where decoding was free). Training renormalizes over the same sets.
    allowed_ids: list[list[int]] | None = None
    truncated: bool = False  # cut off at max_new_tokens without end-of-sequence
    agent_group: str = ""  # the agent's functional group (shared baselines); "" = the agent itself
    # A stable hash of the state the seat acted from (its view, no chat history), where the env
    # gives one: turns from the same state form GiGPO's anchor groups. "" = unknown (unique).
    obs_key: str = ""
    # Named shares of `reward` where the env reports them ("format", "invalid", ...); what they
    # leave over is the "outcome" share (GDPO's per-component rewards).
    reward_parts: dict[str, float] = field(default_factory=dict)
    # The trajectory's outcome class, set when the episode ends: a game's "win" | "draw" | "loss" |
    # "invalid", a workflow's final answer (COPO's answer consistency).
    outcome_key: str = ""
    task: str = ""  # the task the episode started from: its reset seed (SPO's and VADE's task key)


@dataclass
class Episode:
    episode_id: int
    group_id: int
    env: str
    seed: int
    turns: list[Turn]
    returns: list[float]  # shaped return per seat (sum of that seat's turn rewards and late rewards)
    outcomes: list[str]  # per seat: "win" | "draw" | "loss" | "invalid"
    seat_players: list[str]  # who played each seat: an agent name or a bot spec
    game_returns: list[float] = field(default_factory=list)  # the game's own payoffs (chips, +-1)
    info: dict = field(default_factory=dict)  # what the env reports at the end (a workflow: its final answer)


_INT_COLUMNS = ("episode_id", "group_id", "seat", "turn", "step")
_STR_COLUMNS = ("env", "agent", "policy", "agent_group", "obs_key", "outcome_key", "task")
REWARD_PART_PREFIX = "reward__"  # one column per named reward share: reward__format, ...


class TurnBatch:
    """Columnar view of turns: one row per turn. Integer columns are int64 tensors, `reward` float32,
    string columns lists; token columns (`prompt_ids`, ...) are lists of lists, absent for tables
    built with `from_columns`."""

    def __init__(self, columns: dict[str, Any], turns: list[Turn] | None = None):
        self._columns = columns
        self.turns = turns  # the source records, when the batch came from real turns
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"TurnBatch columns have different lengths: {sorted(lengths)}")

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_columns(
        cls,
        *,
        episode_id: Sequence[int],
        group_id: Sequence[int],
        env: Sequence[str] | str,
        agent: Sequence[str] | str,
        seat: Sequence[int],
        turn: Sequence[int],
        reward: Sequence[float],
        policy: Sequence[str] | str | None = None,
        step: Sequence[int] | None = None,
        valid: Sequence[bool] | None = None,
        agent_group: Sequence[str] | str | None = None,
        n_tokens: Sequence[int] | None = None,
        obs_key: Sequence[str] | None = None,
        outcome_key: Sequence[str] | None = None,
        task: Sequence[str] | None = None,
        reward_parts: dict[str, Sequence[float]] | None = None,
    ) -> "TurnBatch":
        """A batch from plain lists with no token data, for estimator tests and comparisons.
        A string for `env`, `agent`, `policy` or `agent_group` applies to every row; `step` defaults
        to `turn`, `policy` and `agent_group` to `agent`."""
        n = len(episode_id)

        def spread(value, default):
            value = default if value is None else value
            return [value] * n if isinstance(value, str) else list(value)

        cols: dict[str, Any] = {
            "episode_id": torch.as_tensor(list(episode_id), dtype=torch.long),
            "group_id": torch.as_tensor(list(group_id), dtype=torch.long),
            "seat": torch.as_tensor(list(seat), dtype=torch.long),
            "turn": torch.as_tensor(list(turn), dtype=torch.long),
            "step": torch.as_tensor(list(turn if step is None else step), dtype=torch.long),
            "reward": torch.as_tensor(list(reward), dtype=torch.float32),
            "env": spread(env, "env"),
            "agent": spread(agent, "agent"),
            "policy": spread(policy, spread(agent, "agent")),
            "agent_group": spread(agent_group, spread(agent, "agent")),
            "valid": torch.as_tensor([True] * n if valid is None else list(valid), dtype=torch.bool),
        }
        if n_tokens is not None:  # response tokens per turn (token-weighted estimators)
            cols["n_tokens"] = torch.as_tensor(list(n_tokens), dtype=torch.long)
        if obs_key is not None:  # the state each turn acted from (anchor-state estimators)
            cols["obs_key"] = list(obs_key)
        for name, values in (("outcome_key", outcome_key), ("task", task)):
            if values is not None:
                cols[name] = list(values)
        for name, values in (reward_parts or {}).items():
            cols[REWARD_PART_PREFIX + name] = torch.as_tensor(list(values), dtype=torch.float32)
        return cls(cols)

    @classmethod
    def from_turns(cls, turns: Iterable[Turn]) -> "TurnBatch":
        turns = list(turns)
        cols: dict[str, Any] = {
            name: torch.as_tensor([getattr(t, name) for t in turns], dtype=torch.long)
            for name in _INT_COLUMNS
        }
        cols["reward"] = torch.as_tensor([t.reward for t in turns], dtype=torch.float32)
        cols["valid"] = torch.as_tensor([t.valid for t in turns], dtype=torch.bool)
        cols["n_tokens"] = torch.as_tensor([len(t.response_ids) for t in turns], dtype=torch.long)
        for name in _STR_COLUMNS:
            cols[name] = [getattr(t, name) for t in turns]
        cols["agent_group"] = [t.agent_group or t.agent for t in turns]
        cols.update(_reward_part_columns(turns))
        return cls(cols, turns)

    # --- access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._columns["episode_id"])

    def __getattr__(self, name: str):
        columns = self.__dict__.get("_columns", {})
        if name in columns:
            return columns[name]
        turns = self.__dict__.get("turns")
        if turns is not None and name in Turn.__dataclass_fields__:
            return [getattr(t, name) for t in turns]
        raise AttributeError(f"TurnBatch has no column {name!r}")

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def select(self, index: Sequence[int] | torch.Tensor) -> "TurnBatch":
        """Rows at `index`, in that order."""
        idx = torch.as_tensor(index, dtype=torch.long)
        picked = idx.tolist()
        cols = {
            k: (v[idx] if isinstance(v, torch.Tensor) else [v[i] for i in picked])
            for k, v in self._columns.items()
        }
        turns = None if self.turns is None else [self.turns[i] for i in picked]
        return TurnBatch(cols, turns)

    def rows_where(self, column: str, value) -> list[int]:
        data = self._columns[column]
        values = data.tolist() if isinstance(data, torch.Tensor) else data
        return [i for i, v in enumerate(values) if v == value]

    def trajectory_keys(self) -> list[tuple[int, int]]:
        """(episode, seat) per row: the identity of a trajectory (docs/algorithms.md, "Identities")."""
        return list(zip(self.episode_id.tolist(), self.seat.tolist()))


def _reward_part_columns(turns: list[Turn]) -> dict[str, torch.Tensor]:
    """`reward__<name>` per named share any turn reports, and `reward__outcome` for the rest of
    each turn's reward (so the shares of a row always add up to its reward). Empty when no turn
    reports shares."""
    names = sorted({name for t in turns for name in t.reward_parts} - {"outcome"})
    if not names:
        return {}
    cols = {REWARD_PART_PREFIX + name: torch.as_tensor([t.reward_parts.get(name, 0.0) for t in turns],
                                                        dtype=torch.float32) for name in names}
    rest = [t.reward - sum(v for k, v in t.reward_parts.items() if k != "outcome") for t in turns]
    cols[REWARD_PART_PREFIX + "outcome"] = torch.as_tensor(rest, dtype=torch.float32)
    return cols
