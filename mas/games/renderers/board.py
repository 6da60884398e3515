"""Perfect-information board games: tic-tac-toe, Connect Four, Nim."""
from __future__ import annotations

import pyspiel

from mas.games.renderers.base import ANSWER_INSTRUCTIONS, COMPACT_INSTRUCTIONS, Renderer, bracket, renderer


@renderer("tic_tac_toe")
class TicTacToeRenderer(Renderer):
    shows_position = True
    rules = ("Two players take turns marking a 3x3 grid; X moves first. Three marks in a row, column or "
             "diagonal win. A full grid with no line is a draw.")

    def system_prompt(self, seat: int) -> str:
        mark = "X" if seat == 0 else "O"
        return (
            "You are an AI agent that makes optimal decisions to win in the game of tic-tac-toe.\n"
            f"GAME RULES: {self.rules}\n"
            f"PLAYER INFORMATION: You are player {seat} and play {mark}.\n{ANSWER_INSTRUCTIONS}"
        )

    def compact_system_prompt(self, seat: int) -> str:
        mark = "X" if seat == 0 else "O"
        return f"Tic-tac-toe: three in a row wins. You are player {seat} ({mark}). {COMPACT_INSTRUCTIONS}"

    def __init__(self, game: pyspiel.Game):
        super().__init__(game)
        self._texts: dict[tuple[int, int], str] = {}

    def action_text(self, state: pyspiel.State, player: int, action: int) -> str:
        # x(0,1) -> <X(0,1)>; the text depends on the player and the cell only, so it is kept
        cached = self._texts.get((player, action))
        if cached is None:
            cached = self._texts[(player, action)] = bracket(state.action_to_string(player, action).upper())
        return cached

    def view(self, state: pyspiel.State, seat: int) -> list[str]:
        rows = [r for r in state.observation_string(seat).splitlines() if r.strip()]
        # The move list names every mark with its cell in one token (<x(1,1)>): a model reads the
        # position from the token itself instead of counting grid characters. Lower case keeps these
        # tokens apart from the legal actions (<X(0,2)>), which name empty cells.
        moves = [self.action_text(state, i % 2, a).lower() for i, a in enumerate(state.history())]
        label = "Moves so far"
        if self.position_only:  # the marks by cell: the order they were played in is not the position
            moves.sort(key=lambda m: m[2:])
            label = "Marks"
        return ["Board:"] + [" ".join(r.strip().upper()) for r in rows] + [
            f"{label}: " + (" ".join(moves) if moves else "none")
        ]


@renderer("connect_four")
class ConnectFourRenderer(Renderer):
    shows_position = True
    rules = ("Two players drop discs into a 7-column, 6-row grid; a disc falls to the lowest free cell of "
             "its column. X moves first. Four discs of one player in a row, column or diagonal win. A full "
             "grid is a draw.")

    def compact_system_prompt(self, seat: int) -> str:
        mark = "X" if seat == 0 else "O"
        return f"Connect Four: four in a line wins. You are player {seat} ({mark}). {COMPACT_INSTRUCTIONS}"

    def action_text(self, state: pyspiel.State, player: int, action: int) -> str:
        return f"<COL{action}>"  # the column the disc is dropped into

    def view(self, state: pyspiel.State, seat: int) -> list[str]:
        rows = [r for r in state.observation_string(seat).splitlines() if r.strip()]
        return ["Board (top row first, columns 0-6):"] + [" ".join(r.strip().upper()) for r in rows]


@renderer("nim")
class NimRenderer(Renderer):
    shows_position = True
    rules = ("Players take turns removing one or more objects from a single pile. Whoever takes the last "
             "object wins.")

    def compact_system_prompt(self, seat: int) -> str:
        return f"Nim: take from one pile; taking the last object wins. You are player {seat}. {COMPACT_INSTRUCTIONS}"

    def action_text(self, state: pyspiel.State, player: int, action: int) -> str:
        # "pile:2, take:3;" -> <TAKE3FROM2>
        text = state.action_to_string(player, action)
        pile = text.split("pile:")[1].split(",")[0].strip()
        take = text.split("take:")[1].split(";")[0].strip()
        return f"<TAKE{take}FROM{pile}>"

    def view(self, state: pyspiel.State, seat: int) -> list[str]:
        piles = state.observation_string(seat).split(":", 1)[1].split()
        return ["Piles: " + " ".join(f"{i + 1}:{n}" for i, n in enumerate(piles))]
