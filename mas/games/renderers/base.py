"""How an OpenSpiel game looks to a seat: rules text, the seat's view, action strings, stakes.

Every renderer shows a seat only what that seat may know: OpenSpiel's `observation_string(seat)` or
`information_state_string(seat)` (never `str(state)`, which prints hidden cards), or a hand-written
view built from the seat's own information. Rendering is small and regular so that a tiny model
trained from scratch can learn it: one system message per seat, then one short user message per
turn with what the others did since, the legal actions, and the view.

Hand-written renderers are registered by OpenSpiel short name (`@renderer("tic_tac_toe")`); any
other game gets the generic `Renderer`. The package imports the modules that register them."""
from __future__ import annotations

from typing import Callable

import pyspiel

__all__ = ["Renderer", "renderer", "make_renderer", "bracket", "ANSWER_INSTRUCTIONS", "COMPACT_INSTRUCTIONS"]

COMPACT_INSTRUCTIONS = "Answer <answer>ACTION</answer> with a legal action."
ANSWER_INSTRUCTIONS = (
    "RESPONSE INSTRUCTIONS: Answer with <answer>ACTION</answer>, where ACTION is one of the legal "
    "actions, written exactly."
)


def bracket(s: str) -> str:
    return "<" + "".join(s.split()) + ">"  # whitespace removed


class Renderer:
    """Generic rendering from OpenSpiel's own strings: the seat's view is its
    `observation_string(seat)` where the game provides observations, else its
    `information_state_string(seat)`; a game with neither cannot be rendered without leaking.
    Other seats' moves are reported only in perfect-information games (elsewhere they may be
    private; the view string carries what the seat may know)."""

    is_poker = False
    rules = ""  # hand-written renderers: the rules of the game in a few sentences
    shows_position = False  # the view alone is the whole position (board games): see `position_only`

    # Set by the env for compact prompts without history: the turn message is then a function of
    # the position alone (no report of the last move, nothing in move order). The same position
    # then always reads the same, so a tiny model sees each one as often as it occurs.
    position_only = False

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
        else:
            raise ValueError(
                f"openspiel: game '{gtype.short_name}' provides neither observation nor information-state "
                "strings, so a seat's view cannot be rendered without showing what it may not see"
            )

    # -- text pieces
    def system_prompt(self, seat: int) -> str:
        rules = f"GAME RULES: {self.rules}\n" if self.rules else ""
        return (
            f"You are an AI agent that makes optimal decisions to win in the game of {self.long_name}.\n"
            f"{rules}PLAYER INFORMATION: You are player {seat}.\n{ANSWER_INSTRUCTIONS}"
        )

    def compact_system_prompt(self, seat: int) -> str:
        return f"{self.long_name}. You are player {seat}. {COMPACT_INSTRUCTIONS}"

    def action_text(self, state: pyspiel.State, player: int, action: int) -> str:
        return bracket(state.action_to_string(player, action))

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


_RENDERERS: dict[str, Callable[[pyspiel.Game], Renderer]] = {}


def renderer(short_name: str):
    """Register a hand-written renderer class for the OpenSpiel game `short_name`."""
    def wrap(cls):
        _RENDERERS[short_name] = cls
        return cls
    return wrap


def make_renderer(game: pyspiel.Game) -> Renderer:
    name = game.get_type().short_name
    if name in _RENDERERS:
        return _RENDERERS[name](game)
    generic = Renderer(game)
    generic.is_poker = "poker" in name
    return generic

