"""Environment protocol, env registry, reward shaping options and answer parsing.

Every environment (OpenSpiel games, custom games, YAML workflows) hands out turns to seats through
the `EnvState` protocol below; the rollout engine only ever talks to that protocol.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

__all__ = [
    "StepResult",
    "EnvState",
    "Env",
    "RewardConfig",
    "register_env",
    "get_env_factory",
    "available_envs",
    "parse_action",
    "extract_answer",
    "OUTCOMES",
]

OUTCOMES = ("win", "draw", "loss", "invalid")


@dataclass
class StepResult:
    """What one `apply` did.

    rewards: the shaped reward each seat earned through this move (every seat is listed; read it
        with `.get(seat, 0.0)` all the same, other envs may omit zeros). The rollout adds a reward
        of a seat that did not move to that seat's latest turn.
    valid: the mover's text parsed to a legal action.
    action: the legal action string applied, None if invalid.
    terminal: the episode is over after this move.
    parts: named shares of some seats' rewards, e.g. {seat: {"format": 0.1}} (GDPO's components);
        whatever a seat's reward holds beyond its named shares is its "outcome" share.
    """

    rewards: dict[int, float]
    valid: bool
    action: str | None
    terminal: bool
    parts: dict[int, dict[str, float]] = field(default_factory=dict)


@runtime_checkable
class EnvState(Protocol):
    """One running episode. Seats are 0..num_seats-1."""

    def current_seats(self) -> list[int]:
        """Seats that act now: one in a sequential game, several at a simultaneous node, [] when
        terminal."""
        ...

    def messages(self, seat: int) -> list[dict]:
        """The whole chat of `seat` so far: system, user, assistant (the exact text the seat
        answered), user, ... It ends with a user message when the seat is to act. Only what that
        seat may see. Earlier messages never change: each turn's list extends the previous one."""
        ...

    def legal_actions(self, seat: int) -> list[str]:
        """Distinct action strings the seat may answer now; [] where any text is allowed (or the
        seat is not to act)."""
        ...

    def apply(self, seat: int, text: str) -> StepResult:
        """Apply the raw answer of `seat` (model text with or without <answer> tags, or a bot's
        exact action string). An answer that does not parse to a legal action ends the episode."""
        ...

    def apply_invalid(self, seat: int, reason: str = "invalid") -> StepResult:
        """Force an invalid move for `seat` (e.g. an answer cut off without end-of-sequence)."""
        ...

    def is_terminal(self) -> bool:
        """The episode is over (game end, invalid move or max_turns reached)."""
        ...

    def returns(self) -> list[float]:
        """Per seat, the sum of all shaped rewards handed out so far."""
        ...

    def game_returns(self) -> list[float]:
        """The game's own payoffs per seat (OpenSpiel returns, e.g. chips); 0s until terminal and
        for episodes ended by an invalid move or by max_turns."""
        ...

    def outcomes(self) -> list[str]:
        """Per seat "win" | "draw" | "loss" | "invalid", at terminal only. The seat that made an
        invalid move gets "invalid" and every other seat "win"; max_turns gives "draw" to all."""
        ...

    def native(self) -> Any:
        """The underlying pyspiel state (None where there is none). For bots: do not mutate."""
        ...

    def action_text(self, action_id: int, seat: int | None = None) -> str:
        """The legal action string of a native action id for `seat` (default: the seat to act)."""
        ...


class Env:
    """Base class of environments: a factory of episodes.

    id: the env id from the config (e.g. "tic_tac_toe"), used in records and advantage groups.
    num_seats: number of seats.
    """

    id: str = ""
    num_seats: int = 0

    def reset(self, seed: int) -> EnvState:
        """A fresh episode; all chance (deals, dice) is drawn from an RNG seeded by `seed`."""
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# Reward shaping options


@dataclass(frozen=True)
class RewardConfig:
    """`env.rewards` (docs/algorithms.md, "Game rewards").

    mode "mars" (default): a valid move pays `format_reward` to the mover; an invalid one ends the
    episode and costs the offender `stake + invalid_penalty`; at the end every seat gets its game
    return, and a draw of a non-poker 2-player game pays `draw_reward` to each seat instead of 0.
    mode "raw": only the game's returns at the end; an invalid move ends the episode with -1 for the
    offender and 0 for the others (no format or draw reward).
    """

    mode: str = "mars"
    format_reward: float = 0.05
    invalid_penalty: float = 10.0
    draw_reward: float = 0.1

    MODES = ("mars", "raw")

    @classmethod
    def from_spec(cls, spec: Any = None, **overrides: Any) -> "RewardConfig":
        """From "mars" | "raw" | None | a mapping {mode, format_reward, invalid_penalty,
        draw_reward}; `overrides` (e.g. top-level env keys) win over the mapping."""
        values: dict[str, Any] = {}
        if spec is None:
            pass
        elif isinstance(spec, str):
            values["mode"] = spec
        elif isinstance(spec, Mapping):
            values.update(spec)
            if "name" in values and "mode" not in values:
                values["mode"] = values.pop("name")
        else:
            raise ValueError(f"env rewards: expected 'mars', 'raw' or a mapping, got {spec!r}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ValueError(f"env rewards: unknown key '{unknown[0]}'; allowed: {', '.join(allowed)}")
        mode = str(values.get("mode", "mars"))
        if mode not in cls.MODES:
            raise ValueError(f"env rewards: unknown mode '{mode}'; allowed: {', '.join(cls.MODES)}")
        values["mode"] = mode
        for key in ("format_reward", "invalid_penalty", "draw_reward"):
            if key in values:
                values[key] = float(values[key])
        return cls(**values)


# ---------------------------------------------------------------------------------------------
# Registry

_ENV_FACTORIES: dict[str, Callable[..., Env]] = {}


def register_env(name: str) -> Callable[[Callable[..., Env]], Callable[..., Env]]:
    """Decorator: register `factory(**kwargs) -> Env` under `name` for `mas.games.make`."""

    def wrap(factory: Callable[..., Env]) -> Callable[..., Env]:
        if name in _ENV_FACTORIES and _ENV_FACTORIES[name] is not factory:
            raise ValueError(f"env '{name}' is already registered")
        _ENV_FACTORIES[name] = factory
        return factory

    return wrap


def available_envs() -> list[str]:
    """Registered env names, sorted."""
    return sorted(_ENV_FACTORIES)


def get_env_factory(name: str) -> Callable[..., Env]:
    try:
        return _ENV_FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown env '{name}'; registered: {', '.join(available_envs())}") from None


# ---------------------------------------------------------------------------------------------
# Parsing answers

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_THINK_END = "</think>"


def extract_answer(text: str) -> str:
    """The part of a model answer that names the action.

    Only the text after the last `</think>` counts; within it the content of the last
    `<answer>...</answer>` (or, when the closing tag is missing, whatever follows the last
    `<answer>`), else the whole text; stripped.
    """
    if text is None:
        return ""
    lower = text.lower()
    cut = lower.rfind(_THINK_END)
    if cut >= 0:
        text = text[cut + len(_THINK_END):]
    found = _ANSWER_RE.findall(text)
    if found:
        return found[-1].strip()
    opened = text.lower().rfind("<answer>")
    if opened >= 0:
        return text[opened + len("<answer>"):].strip()
    return text.strip()


def _loose(s: str) -> str:
    """Lower-case, whitespace removed, one pair of enclosing angle brackets removed."""
    s = re.sub(r"\s+", "", s).lower()
    if s.startswith("<") and s.endswith(">"):
        s = s[1:-1]
    return s


def parse_action(text: str, legal: list[str]) -> str | None:
    """Map a raw answer to one of the `legal` action strings, or None.

    Exact match of the extracted answer first; then lenient: case-insensitive, with or without the
    angle brackets, whitespace ignored ("x(1, 2)" -> "<X(1,2)>"). A lenient form that matches more
    than one legal action is rejected. With `legal == []` (free text) the extracted answer itself is
    returned (None when empty).
    """
    answer = extract_answer(text)
    if not legal:
        return answer or None
    if answer in legal:
        return answer
    key = _loose(answer)
    if not key:
        return None
    matches = [a for a in legal if _loose(a) == key]
    return matches[0] if len(matches) == 1 else None
