"""Any pyspiel game as an `Env`: compact text rendering, action parsing, reward shaping.

Rendering is deliberately small and regular (a tiny model trained from scratch must learn it):
one system message per seat, then one short user message per turn that starts with what the other
seats did since the seat's last turn, shows the seat's view and ends with the legal actions.
Games with a custom renderer: tic_tac_toe, kuhn_poker (2 players), leduc_poker (public betting and
stakes; board from OpenSpiel's observation string). Every other game falls back to OpenSpiel's own
observation / information-state strings.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pyspiel

from mas.games.base import PROMPT_STYLES, Env, EnvState, RewardConfig, StepResult, parse_action, register_env
from mas.games.renderers import Renderer, make_renderer

__all__ = ["OpenSpielEnv", "OpenSpielState", "Renderer", "make_renderer"]

# ---------------------------------------------------------------------------------------------
# Env and state


class OpenSpielEnv(Env):
    """A pyspiel game by name (parameters allowed: "leduc_poker(players=2)").

    Options: rewards ("mars" | "raw" | mapping, see `RewardConfig`), format_reward,
    invalid_penalty, draw_reward (override the numbers), max_turns (default 50: after that many
    moves the episode ends as a draw), prompt ("full": MARS-style rules and instructions;
    "compact": one line, for tiny models), history (True: a seat's chat grows turn by turn and each
    prompt extends the last; False: every turn is a fresh chat of the system message and the
    current state, short prompts for tiny models).
    """

    def __init__(
        self,
        game: str,
        id: str | None = None,
        params: dict | None = None,
        rewards: Any = None,
        max_turns: int = 50,
        format_reward: float | None = None,
        invalid_penalty: float | None = None,
        draw_reward: float | None = None,
        prompt: str = "full",
        history: bool = True,
    ):
        if prompt not in PROMPT_STYLES:
            raise ValueError(f"env prompt must be one of {', '.join(PROMPT_STYLES)}, got '{prompt}'")
        try:
            self.game = pyspiel.load_game(game, dict(params)) if params else pyspiel.load_game(game)
        except Exception as e:  # pyspiel raises a bare RuntimeError/SpielError
            raise ValueError(f"openspiel: cannot load game '{game}' with params {params or {}}: "
                             f"{str(e).splitlines()[0]}") from None
        gtype = self.game.get_type()
        dyn = gtype.dynamics
        if dyn not in (pyspiel.GameType.Dynamics.SEQUENTIAL, pyspiel.GameType.Dynamics.SIMULTANEOUS):
            raise ValueError(f"openspiel: game '{game}' is neither sequential nor simultaneous")
        if int(max_turns) < 1:
            raise ValueError(f"env max_turns must be >= 1, got {max_turns}")
        self.game_name = game
        self.id = str(id) if id is not None else game
        self.num_seats = self.game.num_players()
        self.rewards = RewardConfig.from_spec(
            rewards, format_reward=format_reward, invalid_penalty=invalid_penalty, draw_reward=draw_reward
        )
        self.max_turns = int(max_turns)
        self.renderer = make_renderer(self.game)
        self.prompt = prompt
        self.history = bool(history)
        self.renderer.position_only = prompt == "compact" and not self.history and self.renderer.shows_position
        # intermediate rewards (Hanabi): paid as they come, to every seat they name
        self.step_rewards = gtype.reward_model == pyspiel.GameType.RewardModel.REWARDS
        self.cooperative = gtype.utility == pyspiel.GameType.Utility.IDENTICAL
        self.perfect_information = gtype.information == pyspiel.GameType.Information.PERFECT_INFORMATION
        self.pays_chips = self.renderer.is_poker
        self.reset(0)  # a game whose first position cannot be rendered fails here, not mid-run

    def reset(self, seed: int) -> "OpenSpielState":
        return OpenSpielState(self, seed)

    def reset_explicit_chance(self) -> "OpenSpielState":
        return OpenSpielState(self, 0, explicit_chance=True)

    def __repr__(self) -> str:
        return f"OpenSpielEnv(id={self.id!r}, game={self.game_name!r}, rewards={self.rewards.mode!r})"


class OpenSpielState(EnvState):
    """One episode of an `OpenSpielEnv`. With `explicit_chance`, chance events wait for
    `apply_chance` instead of being drawn from the seed."""

    def __init__(self, env: OpenSpielEnv, seed: int, *, explicit_chance: bool = False):
        self.env = env
        self.seed = seed
        self.explicit_chance = explicit_chance
        self._rng = np.random.default_rng(seed)
        self._state = env.game.new_initial_state()
        self._r = env.rewards
        self._render = env.renderer
        n = env.num_seats
        self._chat: list[list[dict]] = [[] for _ in range(n)]
        self._events: list[list[str]] = [[] for _ in range(n)]
        self._legal: dict[int, tuple[list[str], list[int]]] = {}
        self._joint: dict[int, int] = {}  # simultaneous node: actions submitted so far
        self._returns = [0.0] * n
        self._game_returns = [0.0] * n
        self._outcomes: list[str] | None = None
        self._terminal = False
        self.end_reason: str | None = None  # "game" | "invalid" | "truncated" | "max_turns"
        self.invalid_seat: int | None = None
        self.moves = 0  # joint moves applied (chance excluded)
        self._resolve_chance()
        if self._state.is_terminal():
            self._finish_game({s: 0.0 for s in range(n)})
        self._prepare()

    def clone(self) -> "OpenSpielState":
        twin = copy.copy(self)
        twin._state = self._state.clone()
        # copying a numpy generator is most of a clone's cost; explicit chance never draws from it
        twin._rng = self._rng if self.explicit_chance else copy.deepcopy(self._rng)
        twin._chat = [list(chat) for chat in self._chat]  # messages are never changed, only appended
        twin._events = [list(events) for events in self._events]
        twin._legal = dict(self._legal)
        twin._joint = dict(self._joint)
        twin._returns = list(self._returns)
        twin._game_returns = list(self._game_returns)
        twin._outcomes = None if self._outcomes is None else list(self._outcomes)
        return twin

    # -- protocol ---------------------------------------------------------------------------
    def current_seats(self) -> list[int]:
        if self._terminal or (self.explicit_chance and self._state.is_chance_node()):  # drawn chance never waits
            return []
        if self._state.is_simultaneous_node():
            return [p for p in range(self.env.num_seats) if p not in self._joint and self._state.legal_actions(p)]
        return [self._state.current_player()]

    def messages(self, seat: int) -> list[dict]:
        chat = self._chat[seat]
        if not self.env.history and len(chat) > 2:
            last_user = max(i for i, m in enumerate(chat) if m["role"] == "user")
            chat = chat[:1] + chat[last_user:]
        return [dict(m) for m in chat]

    def obs_key(self, seat: int) -> str:
        """A stable hash of what `seat` sees now and who is to move (no chat history)."""
        import hashlib

        view = f"{self._state.current_player()}|{self._render._view(self._state, seat)}"
        return hashlib.blake2b(view.encode(), digest_size=8).hexdigest()

    def position_key(self) -> str | None:
        # Only where prompts show the position alone (compact, no history, a board game), and
        # only before the episode was ended by the env (an invalid answer, max_turns).
        if not self._render.position_only or (self._terminal and self.end_reason != "game"):
            return None
        return f"{self.moves}|{self._state.current_player()}|{self._state}"

    def legal_actions(self, seat: int) -> list[str]:
        if seat not in self.current_seats():
            return []
        return list(self._legal[seat][0])

    def apply(self, seat: int, text: str) -> StepResult:
        self._check_turn(seat)
        legal, ids = self._legal[seat]
        action = parse_action(text, legal)
        self._chat[seat].append({"role": "assistant", "content": text})
        if action is None:
            return self._end_invalid(seat, "invalid")
        action_id = ids[legal.index(action)]
        rewards = {s: 0.0 for s in range(self.env.num_seats)}
        parts = {}
        if self._r.mode == "mars":
            rewards[seat] += self._r.format_reward
            parts = {seat: {"format": self._r.format_reward}}
        for other in range(self.env.num_seats):
            if other != seat:
                line = self._render.event_line(seat, other, action)
                if line is not None:
                    self._events[other].append(line)
        del self._legal[seat]
        if self._state.is_simultaneous_node():
            self._joint[seat] = action_id
            if self.current_seats():  # others still to submit
                return self._step(rewards, action, parts)
            joint = [self._joint.get(p, 0) for p in range(self.env.num_seats)]
            self._joint = {}
            self._state.apply_actions(joint)
        else:
            self._state.apply_action(action_id)
        if self.env.step_rewards:
            for s, r in enumerate(self._state.rewards()):
                rewards[s] += float(r)
        self.moves += 1
        self._resolve_chance()
        if self._state.is_terminal():
            self._finish_game(rewards)
        elif self.moves >= self.env.max_turns:
            self._finish_draw(rewards)
        return self._step(rewards, action, parts)

    def apply_invalid(self, seat: int, reason: str = "truncated") -> StepResult:
        """End the episode with an invalid move by `seat` (e.g. an answer cut off at
        max_new_tokens). Nothing is added to the seat's chat."""
        self._check_turn(seat)
        return self._end_invalid(seat, reason)

    def is_terminal(self) -> bool:
        return self._terminal

    def returns(self) -> list[float]:
        return list(self._returns)

    def game_returns(self) -> list[float]:
        return list(self._game_returns)

    def outcomes(self) -> list[str]:
        if self._outcomes is None:
            raise ValueError("outcomes are defined only at the end of an episode")
        return list(self._outcomes)

    def native(self) -> pyspiel.State:
        return self._state

    def chance_outcomes(self) -> list[tuple[int, float]]:
        if self._terminal or not self._state.is_chance_node():
            return []
        return [(int(a), float(p)) for a, p in self._state.chance_outcomes()]

    def apply_chance(self, outcome: int) -> None:
        if not self.chance_outcomes():
            raise ValueError("no chance event is pending")
        self._state.apply_action(outcome)
        if self._state.is_terminal():
            rewards = {s: 0.0 for s in range(self.env.num_seats)}
            self._finish_game(rewards)
            self._step(rewards, "chance")
        else:
            self._prepare()

    def action_text(self, action_id: int, seat: int | None = None) -> str:
        if seat is None:
            seat = self.current_seats()[0]
        if seat in self._legal:
            legal, ids = self._legal[seat]
            if action_id in ids:
                return legal[ids.index(action_id)]
        return self._render.action_text(self._state, seat, action_id)

    # -- internals --------------------------------------------------------------------------
    def _check_turn(self, seat: int) -> None:
        if self._terminal:
            raise ValueError("the episode is over")
        if seat not in self.current_seats():
            raise ValueError(f"seat {seat} is not to act (to act: {self.current_seats()})")

    def _resolve_chance(self) -> None:
        while self._state.is_chance_node() and not self.explicit_chance:
            outcomes, probs = zip(*self._state.chance_outcomes())
            p = np.asarray(probs, dtype=np.float64)
            self._state.apply_action(outcomes[int(self._rng.choice(len(outcomes), p=p / p.sum()))])

    def _legal_texts(self, seat: int) -> tuple[list[str], list[int]]:
        ids = list(self._state.legal_actions(seat))
        texts = [self._render.action_text(self._state, seat, a) for a in ids]
        if len(set(texts)) != len(texts):
            dup = sorted({t for t in texts if texts.count(t) > 1})[0]
            raise ValueError(f"openspiel: game '{self.env.game_name}' names two legal actions '{dup}', so an "
                             "answer cannot say which; it needs a hand-written renderer (docs/games.md)")
        return texts, ids

    def _prepare(self) -> None:
        """Open a user message for every seat that is to act and has none open."""
        for seat in self.current_seats():
            if seat in self._legal:
                continue
            legal, ids = self._legal_texts(seat)
            self._legal[seat] = (legal, ids)
            chat = self._chat[seat]
            if not chat:
                system = (self._render.system_prompt(seat) if self.env.prompt == "full"
                          else self._render.compact_system_prompt(seat))
                chat.append({"role": "system", "content": system})
            events = [] if self._render.position_only else self._events[seat]
            content = self._render.turn_message(self._state, seat, events, legal)
            self._events[seat] = []
            chat.append({"role": "user", "content": content})

    def _step(self, rewards: dict[int, float], action: str | None, parts=None) -> StepResult:
        for s, r in rewards.items():
            self._returns[s] += r
        if not self._terminal:
            self._prepare()
        return StepResult(rewards=rewards, valid=action is not None, action=action, terminal=self._terminal,
                          parts=parts or {})

    def _end_invalid(self, seat: int, reason: str) -> StepResult:
        n = self.env.num_seats
        rewards = {s: 0.0 for s in range(n)}
        if self._r.mode == "mars":
            rewards[seat] = -self._render.stake(self._state, seat) - self._r.invalid_penalty
        else:
            rewards[seat] = -1.0
        self._terminal = True
        self.end_reason = reason
        self.invalid_seat = seat
        self._outcomes = ["invalid" if s == seat else "win" for s in range(n)]
        self._legal.clear()
        return self._step(rewards, None, {seat: {"invalid": rewards[seat]}})

    def _finish_game(self, rewards: dict[int, float]) -> None:
        game = [float(x) for x in self._state.returns()]
        self._game_returns = game
        draw = all(g == game[0] for g in game)
        if draw:
            self._outcomes = ["draw"] * len(game)
        else:
            best = max(game)
            self._outcomes = ["win" if g == best else "loss" for g in game]
        pays_draw = (self._r.mode == "mars" and draw and game[0] == 0.0 and not self._render.is_poker
                     and not self.env.step_rewards)  # a cooperative score of 0 is no draw
        for s, g in enumerate(game):
            if pays_draw:
                rewards[s] += self._r.draw_reward
            elif not self.env.step_rewards:  # step rewards were paid move by move already
                rewards[s] += g
        self._terminal = True
        self.end_reason = "game"
        self._legal.clear()

    def _finish_draw(self, rewards: dict[int, float]) -> None:
        """max_turns reached: a draw, game returns stay 0."""
        if self._r.mode == "mars":
            for s in rewards:
                rewards[s] += self._r.draw_reward
        self._outcomes = ["draw"] * self.env.num_seats
        self._terminal = True
        self.end_reason = "max_turns"
        self._legal.clear()


# ---------------------------------------------------------------------------------------------
# Registered factories


@register_env("openspiel")
def openspiel_env(game: str, **options: Any) -> OpenSpielEnv:
    """Any pyspiel game: {"name": "openspiel", "game": "leduc_poker", ...}."""
    return OpenSpielEnv(game, **options)


def _named_env(name: str, game: str | None, options: dict[str, Any]) -> OpenSpielEnv:
    if game is not None and game != name:
        raise ValueError(f"env '{name}': game must be '{name}' or unset, got '{game}'")
    if options.get("id") is None:
        options["id"] = name
    return OpenSpielEnv(name, **options)


@register_env("tic_tac_toe")
def tic_tac_toe_env(game: str | None = None, **options: Any) -> OpenSpielEnv:
    return _named_env("tic_tac_toe", game, options)


@register_env("kuhn_poker")
def kuhn_poker_env(game: str | None = None, **options: Any) -> OpenSpielEnv:
    return _named_env("kuhn_poker", game, options)


def _register_named(env_id: str, game: str, params: dict | None = None) -> None:
    """An env id for a game with fixed parameters (the MARS suite, docs/games.md)."""
    def factory(**options: Any) -> OpenSpielEnv:
        asked = options.pop("game", None)
        if asked is not None and asked != game:
            raise ValueError(f"env '{env_id}': game must be '{game}' or unset, got '{asked}'")
        options.setdefault("id", env_id)
        if params:
            options["params"] = {**params, **(options.get("params") or {})}
        return OpenSpielEnv(game, **options)
    register_env(env_id)(factory)


HANABI_MINI = {"players": 2, "colors": 2, "ranks": 2, "hand_size": 3, "max_information_tokens": 3, "max_life_tokens": 3}
HANABI_SIMPLE = {"players": 2, "colors": 3, "ranks": 2, "hand_size": 5, "max_information_tokens": 8, "max_life_tokens": 3}
for _id, _game, _params in [("connect_four", "connect_four", None), ("leduc_poker", "leduc_poker", None),
                            ("liars_dice", "liars_dice", None), ("nim", "nim", None),
                            ("hanabi_mini", "hanabi", HANABI_MINI), ("hanabi_simple", "hanabi", HANABI_SIMPLE)]:
    _register_named(_id, _game, _params)
