"""Race to 21, a game written for mas (not in OpenSpiel), and the worked example of docs/games.md.

Two players count up from 0 in turns, each adding 1, 2 or 3 to the running total; whoever brings
the total to 21 wins. (The first player wins with perfect play by always reaching 1, 5, 9, 13, 17.)
To make the opening vary, the count starts from a random number between 0 and 3."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mas.games.base import register_env
from mas.games.custom import CustomGame


@dataclass
class Race21State:
    total: int
    player: int = 0
    last: str = "none"


class Race21(CustomGame):
    name = "race_to_21"
    rules = "Players take turns adding 1, 2 or 3 to a running total; whoever brings the total to exactly 21 wins."
    TARGET = 21
    perfect_information = True

    def new_state(self, rng: np.random.Generator) -> Race21State:
        return Race21State(total=int(rng.integers(0, 4)))

    def start_states(self) -> list[tuple[Race21State, float]]:
        return [(Race21State(total=t), 0.25) for t in range(4)]

    def to_move(self, state: Race21State) -> int:
        return state.player

    def legal(self, state: Race21State, seat: int) -> list[str]:
        return [f"<ADD{k}>" for k in (1, 2, 3) if state.total + k <= self.TARGET]

    def play(self, state: Race21State, seat: int, action: str) -> list[float] | None:
        state.total += int(action[4])
        state.last = action
        state.player = 1 - seat
        if state.total == self.TARGET:
            return [1.0 if s == seat else -1.0 for s in range(2)]
        return None

    def view(self, state: Race21State, seat: int) -> str:
        return f"Total: {state.total}. Opponent's last move: {state.last}."


@register_env("race_to_21")
def race_to_21_env(**options) -> Race21:
    return Race21(**options)
