"""Environment protocol, env registry, reward shaping options and answer parsing.

Every environment (OpenSpiel games, custom games, YAML workflows) inherits `Env` and hands out
turns to seats through states that inherit `EnvState`; the rollout engine and evaluation only ever
talk to those two classes, whose every capability has a documented default.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

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
PROMPT_STYLES = ("full", "compact")  # env.prompt: rules and instructions, or one line for tiny models


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


class EnvState:
    """One running episode. Seats are 0..num_seats-1.

    Every env's state inherits this class. The methods that raise `NotImplementedError` are the
    protocol every env implements; the rest are optional capabilities with the default written
    here, which an env overrides where it has the capability. Callers use them as they are and
    never test a state for an attribute.
    """

    #: An answer cut off at max_new_tokens is read as written (a workflow: a benchmark's final
    #: answer may stand before the cut). False: the rollout treats it as an invalid move.
    reads_cut_off_answers: bool = False

    # --- the protocol -------------------------------------------------------------------------
    def current_seats(self) -> list[int]:
        """Seats that act now: one in a sequential game, several at a simultaneous node, [] when
        terminal (or at a pending chance event, see `chance_outcomes`)."""
        raise NotImplementedError

    def messages(self, seat: int) -> list[dict]:
        """The whole chat of `seat` so far: system, user, assistant (the exact text the seat
        answered), user, ... It ends with a user message when the seat is to act. Only what that
        seat may see. With `Env.history`, each turn's list extends the previous one."""
        raise NotImplementedError

    def legal_actions(self, seat: int) -> list[str]:
        """Distinct action strings the seat may answer now; [] where any text is allowed (or the
        seat is not to act)."""
        raise NotImplementedError

    def apply(self, seat: int, text: str) -> StepResult:
        """Apply the raw answer of `seat` (model text with or without <answer> tags, or a bot's
        exact action string). An answer that does not parse to a legal action ends the episode."""
        raise NotImplementedError

    def apply_invalid(self, seat: int, reason: str = "invalid") -> StepResult:
        """Force an invalid move for `seat` (e.g. an answer cut off without end-of-sequence)."""
        raise NotImplementedError

    def is_terminal(self) -> bool:
        """The episode is over (game end, invalid move or max_turns reached)."""
        raise NotImplementedError

    def returns(self) -> list[float]:
        """Per seat, the sum of all shaped rewards handed out so far."""
        raise NotImplementedError

    def outcomes(self) -> list[str]:
        """Per seat "win" | "draw" | "loss" | "invalid", at terminal only. The seat that made an
        invalid move gets "invalid" and every other seat "win"; max_turns gives "draw" to all."""
        raise NotImplementedError

    # --- capabilities, with their defaults ------------------------------------------------------
    def game_returns(self) -> list[float]:
        """The game's own payoffs per seat (OpenSpiel returns, e.g. chips). Default: the shaped
        returns."""
        return self.returns()

    def native(self) -> Any:
        """The underlying pyspiel state, for bots (do not mutate). Default: None (no pyspiel state)."""
        return None

    def action_text(self, action_id: int, seat: int | None = None) -> str:
        """The legal action string of a native action id for `seat` (default: the seat to act).
        Only envs with native actions have it."""
        raise ValueError(f"{type(self).__name__} has no native actions")

    def answer_template(self, seat: int) -> str | None:
        """How `seat` writes an answer, with an `{action}` placeholder (a verifier's
        `<verify>{action}</verify>`). Default None: the agent's own answer format."""
        return None

    def obs_key(self, seat: int) -> str:
        """A stable key of what `seat` sees now (anchor-state grouping of step-level estimators).
        Default "": no key."""
        return ""

    def position_key(self) -> str | None:
        """A key equal for two states exactly when they are one position: the same future and
        every seat shown the same prompt from here on, whatever the moves that led there.
        Exact evaluation walks each position once. Default None: every history is its own
        position."""
        return None

    def outcome_key(self, seat: int) -> str:
        """A key under which samples of one task that reached the same result agree (COPO).
        Default: the seat's outcome."""
        return self.outcomes()[seat]

    def info(self) -> dict:
        """What evaluation and metrics read at the end of an episode (a workflow's final answer,
        an attack's success). Default: {}."""
        return {}

    def chance_outcomes(self) -> list[tuple[int, float]]:
        """At a pending chance event (a deal, a die), its outcomes with their probabilities, for
        exact evaluation; [] otherwise. Only states from `Env.reset_explicit_chance` stop at chance
        events: `Env.reset` draws them from the episode's seed. Default: [] (never pending)."""
        return []

    def apply_chance(self, outcome: int) -> None:
        """Resolve the pending chance event with `outcome` (one listed by `chance_outcomes`)."""
        raise ValueError(f"{type(self).__name__} has no pending chance event")

    def clone(self) -> "EnvState":
        """An independent copy to play on without changing this one. Default: a deep copy that
        shares the env the state refers to; states holding native objects override it."""
        shared = {id(v): v for v in vars(self).values() if isinstance(v, Env)}
        return copy.deepcopy(self, shared)


class Env:
    """Base class of environments: a factory of episodes. Every registered env inherits it.

    id: the env id from the config (e.g. "tic_tac_toe"), used in records and advantage groups.
    num_seats: number of seats.
    The other attributes and the methods after `reset` are optional capabilities with their
    defaults; an env overrides those it has.
    """

    id: str = ""
    num_seats: int = 0

    #: Each prompt of a seat extends its previous prompt and answer (the chat grows turn by turn),
    #: so the backend keeps a turn's KV cache for the next. False: every turn starts a fresh chat.
    history: bool = True
    #: Every seat plays on one side (a workflow): evaluation measures the system's accuracy.
    team: bool = False
    #: Evaluation plays the agents on every seat and reports `episode_metrics` (attacker/defender).
    evaluates_itself: bool = False
    #: Fixed names of the seats (a workflow's agents), or None: the config assigns agents to seats.
    seat_names: list[str] | None = None
    #: The pyspiel game behind the env, for bots that search or solve it (MCTS, CFR); None: none.
    game: Any = None
    #: Every seat receives the same payoff (Hanabi): evaluation reports the self-play score.
    cooperative: bool = False
    #: Every seat sees the whole state (tic-tac-toe): `mas play` shows the board.
    perfect_information: bool = False
    #: Payoffs are chips (poker): evaluation also reports the mean payoff.
    pays_chips: bool = False

    def reset(self, seed: int) -> EnvState:
        """A fresh episode; all chance (deals, dice) is drawn from an RNG seeded by `seed`."""
        raise NotImplementedError

    def reset_explicit_chance(self) -> EnvState:
        """A fresh episode that stops at every chance event instead of drawing it (see
        `EnvState.chance_outcomes`), for exact evaluation. Default: not supported."""
        raise ValueError(f"env '{self.id}' draws its chance events itself and cannot enumerate them")

    def set_iteration(self, iteration: int) -> None:
        """The training iteration about to be played (envs whose rewards follow a schedule).
        Default: nothing."""

    def episode_metrics(self, infos: list[dict]) -> dict[str, float]:
        """Metrics over the `info()` of this env's finished episodes, for training logs and
        self-evaluation. Default: {}."""
        return {}


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
        if isinstance(factory, type) and not issubclass(factory, Env):
            raise TypeError(f"env '{name}': {factory.__name__} does not inherit mas.games.Env")
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
