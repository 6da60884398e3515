"""Any pyspiel game as an `Env`: compact text rendering, action parsing, reward shaping.

Rendering is deliberately small and regular (a tiny model trained from scratch must learn it):
one system message per seat, then one short user message per turn that starts with what the other
seats did since the seat's last turn, shows the seat's view and ends with the legal actions.
Games with a custom renderer: tic_tac_toe, kuhn_poker (2 players), leduc_poker (public betting and
stakes; board from OpenSpiel's observation string). Every other game falls back to OpenSpiel's own
observation / information-state strings.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyspiel

from mas.games.base import Env, RewardConfig, StepResult, parse_action, register_env

__all__ = ["OpenSpielEnv", "OpenSpielState", "Renderer", "make_renderer"]

COMPACT_INSTRUCTIONS = "Answer <answer>ACTION</answer> with a legal action."
ANSWER_INSTRUCTIONS = (
    "RESPONSE INSTRUCTIONS: Answer with <answer>ACTION</answer>, where ACTION is one of the legal "
    "actions, written exactly."
)


def _bracket(s: str) -> str:
    return "<" + re.sub(r"\s+", "", s) + ">"


# ---------------------------------------------------------------------------------------------
# Renderers: how one game looks to a seat


class Renderer:
    """Generic rendering from OpenSpiel's own strings.

    The seat's view: `observation_string(seat)` where the game provides observations, else
    `information_state_string(seat)`, else `str(state)` (perfect-information games only).
    Other seats' moves are reported only in perfect-information games (elsewhere they may be
    private; the view string carries what the seat may know).
    """

    is_poker = False

    def __init__(self, game: pyspiel.Game):
        self.game = game
        gtype = game.get_type()
        self.num_players = game.num_players()
        self.long_name = gtype.long_name
        self.perfect_info = gtype.information == pyspiel.GameType.Information.PERFECT_INFORMATION
        self.public_actions = self.perfect_info
        if gtype.provides_observation_string:
            self._view = lambda state, seat: state.observation_string(seat)
        elif gtype.provides_information_state_string:
            self._view = lambda state, seat: state.information_state_string(seat)
        elif self.perfect_info:
            self._view = lambda state, seat: str(state)
        else:
            raise ValueError(
                f"game '{gtype.short_name}' has hidden information but no observation or "
                "information-state strings; it cannot be rendered without leaking"
            )

    # -- text pieces
    def system_prompt(self, seat: int) -> str:
        return (
            f"You are an AI agent that makes optimal decisions to win in the game of {self.long_name}.\n"
            f"PLAYER INFORMATION: You are player {seat}.\n{ANSWER_INSTRUCTIONS}"
        )

    def compact_system_prompt(self, seat: int) -> str:
        return f"{self.long_name}. You are player {seat}. {COMPACT_INSTRUCTIONS}"

    def action_text(self, state: pyspiel.State, player: int, action: int) -> str:
        return _bracket(state.action_to_string(player, action))

    def event_line(self, actor: int, seat: int, action: str) -> str | None:
        """What `seat` learns of `actor`'s move (None: nothing)."""
        if not self.public_actions:
            return None
        who = "Opponent" if self.num_players == 2 else f"Player {actor}"
        return f"{who} played {action}."

    def view(self, state: pyspiel.State, seat: int) -> list[str]:
        text = "\n".join(line.rstrip() for line in self._view(state, seat).strip("\n").splitlines())
        return ["State:", text]

    def turn_message(self, state: pyspiel.State, seat: int, events: list[str], legal: list[str]) -> str:
        # The state comes last, right before the answer: its tokens then sit at the same distance
        # from the decision every turn, which even a tiny model can learn to read.
        lines = list(events) + ["Legal actions: " + " ".join(legal)] + self.view(state, seat)
        return "\n".join(lines)

    def stake(self, state: pyspiel.State, seat: int) -> float:
        """What an invalid move forfeits besides the penalty."""
        return 1.0


class TicTacToeRenderer(Renderer):
    def system_prompt(self, seat: int) -> str:
        mark = "X" if seat == 0 else "O"
        return (
            "You are an AI agent that makes optimal decisions to win in the game of tic-tac-toe.\n"
            "GAME RULES: Two players take turns marking a 3x3 grid; X moves first. Three marks in a "
            "row, column or diagonal win. A full grid with no line is a draw.\n"
            f"PLAYER INFORMATION: You are player {seat} and play {mark}.\n{ANSWER_INSTRUCTIONS}"
        )

    def compact_system_prompt(self, seat: int) -> str:
        mark = "X" if seat == 0 else "O"
        return f"Tic-tac-toe: three in a row wins. You are player {seat} ({mark}). {COMPACT_INSTRUCTIONS}"

    def action_text(self, state: pyspiel.State, player: int, action: int) -> str:
        return _bracket(state.action_to_string(player, action).upper())  # x(0,1) -> <X(0,1)>

    def view(self, state: pyspiel.State, seat: int) -> list[str]:
        rows = [r for r in str(state).splitlines() if r.strip()]
        # The move list names every mark with its cell in one token (<x(1,1)>): a model reads the
        # position from the token itself instead of counting grid characters. Lower case keeps these
        # tokens apart from the legal actions (<X(0,2)>), which name empty cells.
        moves = [self.action_text(state, i % 2, a).lower() for i, a in enumerate(state.history())]
        return ["Board:"] + [" ".join(r.strip().upper()) for r in rows] + [
            "Moves so far: " + (" ".join(moves) if moves else "none")
        ]


class KuhnRenderer(Renderer):
    """Two-player Kuhn poker. Cards 0, 1, 2 are J, Q, K. Only the seat's own card is ever shown."""

    is_poker = True
    CARDS = "JQK"

    def __init__(self, game: pyspiel.Game):
        super().__init__(game)
        self.public_actions = True  # bets are public; the deal is not

    def system_prompt(self, seat: int) -> str:
        order = "first" if seat == 0 else "second"
        return (
            "You are an AI agent that makes optimal decisions to win in the game of Kuhn poker.\n"
            "GAME RULES: The deck is J < Q < K. Each player antes 1 chip and gets one private card. "
            "<PASS> checks, or folds to a bet; <BET> adds 1 chip, or calls a bet. After two passes or "
            "a call the higher card wins the pot; a fold loses the chips committed.\n"
            f"PLAYER INFORMATION: You are player {seat} and act {order}.\n{ANSWER_INSTRUCTIONS}"
        )

    def compact_system_prompt(self, seat: int) -> str:
        return (f"Kuhn poker: J < Q < K, ante 1, one bet of 1. You are player {seat}. "
                f"{COMPACT_INSTRUCTIONS}")

    def action_text(self, state: pyspiel.State, player: int, action: int) -> str:
        return _bracket(state.action_to_string(player, action).upper())  # Pass/Bet -> <PASS>/<BET>

    @staticmethod
    def committed(state: pyspiel.State, seat: int) -> list[float]:
        """Chips each player has put in the pot (ante included), from `seat`'s observation tensor:
        [player one-hot (n), card one-hot (n+1), contributions (n)]."""
        n = state.num_players()
        t = state.observation_tensor(seat)
        return [float(x) for x in t[2 * n + 1: 3 * n + 1]]

    def view(self, state: pyspiel.State, seat: int) -> list[str]:
        card = self.CARDS[state.history()[seat]]  # the first n actions deal one card per player
        chips = self.committed(state, seat)
        mine, theirs = chips[seat], chips[1 - seat]
        return [f"Your card: {card}", f"Pot: {mine + theirs:g} (you {mine:g}, opponent {theirs:g})"]

    def stake(self, state: pyspiel.State, seat: int) -> float:
        return self.committed(state, seat)[seat]


class LeducRenderer(Renderer):
    """Leduc poker: OpenSpiel's observation string as the view, public betting, chip stakes."""

    is_poker = True
    _ANTE = re.compile(r"\[Ante:([^\]]*)\]")

    def __init__(self, game: pyspiel.Game):
        super().__init__(game)
        self.public_actions = True

    def stake(self, state: pyspiel.State, seat: int) -> float:
        # "[Ante: a b]" in the observation string is each player's total contribution so far.
        m = self._ANTE.search(state.observation_string(seat))
        return float(m.group(1).split()[seat]) if m else 1.0


def make_renderer(game: pyspiel.Game) -> Renderer:
    name = game.get_type().short_name
    if name == "tic_tac_toe":
        return TicTacToeRenderer(game)
    if name == "kuhn_poker" and game.num_players() == 2:
        return KuhnRenderer(game)
    if name == "leduc_poker":
        return LeducRenderer(game)
    renderer = Renderer(game)
    renderer.is_poker = "poker" in name
    return renderer


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
        rewards: Any = None,
        max_turns: int = 50,
        format_reward: float | None = None,
        invalid_penalty: float | None = None,
        draw_reward: float | None = None,
        prompt: str = "full",
        history: bool = True,
    ):
        if prompt not in ("full", "compact"):
            raise ValueError(f"env prompt must be 'full' or 'compact', got '{prompt}'")
        try:
            self.game = pyspiel.load_game(game)
        except Exception as e:  # pyspiel raises a bare RuntimeError/SpielError
            raise ValueError(f"openspiel: cannot load game '{game}': {str(e).splitlines()[0]}") from None
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

    def reset(self, seed: int) -> "OpenSpielState":
        return OpenSpielState(self, seed)

    def __repr__(self) -> str:
        return f"OpenSpielEnv(id={self.id!r}, game={self.game_name!r}, rewards={self.rewards.mode!r})"


class OpenSpielState:
    """One episode of an `OpenSpielEnv` (implements `mas.games.base.EnvState`)."""

    def __init__(self, env: OpenSpielEnv, seed: int):
        self.env = env
        self.seed = seed
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

    # -- protocol ---------------------------------------------------------------------------
    def current_seats(self) -> list[int]:
        if self._terminal:
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
        if self._r.mode == "mars":
            rewards[seat] += self._r.format_reward
        for other in range(self.env.num_seats):
            if other != seat:
                line = self._render.event_line(seat, other, action)
                if line is not None:
                    self._events[other].append(line)
        del self._legal[seat]
        if self._state.is_simultaneous_node():
            self._joint[seat] = action_id
            if self.current_seats():  # others still to submit
                return self._step(rewards, action)
            joint = [self._joint.get(p, 0) for p in range(self.env.num_seats)]
            self._joint = {}
            self._state.apply_actions(joint)
        else:
            self._state.apply_action(action_id)
        self.moves += 1
        self._resolve_chance()
        if self._state.is_terminal():
            self._finish_game(rewards)
        elif self.moves >= self.env.max_turns:
            self._finish_draw(rewards)
        return self._step(rewards, action)

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
        while self._state.is_chance_node():
            outcomes, probs = zip(*self._state.chance_outcomes())
            p = np.asarray(probs, dtype=np.float64)
            self._state.apply_action(outcomes[int(self._rng.choice(len(outcomes), p=p / p.sum()))])

    def _legal_texts(self, seat: int) -> tuple[list[str], list[int]]:
        ids = list(self._state.legal_actions(seat))
        texts = [self._render.action_text(self._state, seat, a) for a in ids]
        if len(set(texts)) != len(texts):  # make distinct: <Call> twice -> <Call#3> <Call#7>
            dup = {t for t in texts if texts.count(t) > 1}
            texts = [f"{t[:-1]}#{a}>" if t in dup else t for t, a in zip(texts, ids)]
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
            content = self._render.turn_message(self._state, seat, self._events[seat], legal)
            self._events[seat] = []
            chat.append({"role": "user", "content": content})

    def _step(self, rewards: dict[int, float], action: str | None) -> StepResult:
        for s, r in rewards.items():
            self._returns[s] += r
        if not self._terminal:
            self._prepare()
        return StepResult(rewards=rewards, valid=action is not None, action=action, terminal=self._terminal)

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
        return self._step(rewards, None)

    def _finish_game(self, rewards: dict[int, float]) -> None:
        game = [float(x) for x in self._state.returns()]
        self._game_returns = game
        draw = all(g == game[0] for g in game)
        if draw:
            self._outcomes = ["draw"] * len(game)
        else:
            best = max(game)
            self._outcomes = ["win" if g == best else "loss" for g in game]
        pays_draw = self._r.mode == "mars" and draw and game[0] == 0.0 and not self._render.is_poker
        for s, g in enumerate(game):
            rewards[s] += self._r.draw_reward if pays_draw else g
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
