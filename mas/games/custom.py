"""Writing a game for mas in plain Python (docs/games.md): subclass `CustomGame`, describe the rules,
the state, the legal moves, what a move does and what a seat sees, and register it with
`@register_env("my_game")`. The base class does the rest of the env protocol: chats per seat,
answer parsing, the MARS rewards (format reward, invalid move ends the episode with the penalty,
win / loss / draw payoffs), outcomes and returns.

A custom game has no pyspiel state, so MCTS and CFR bots do not apply; `random` does."""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from mas.games.base import Env, EnvState, RewardConfig, StepResult, parse_action


class CustomGame(Env):
    """Two-or-more-player, sequential, perfect-or-imperfect information, terminal payoffs."""

    rules = ""  # a few sentences shown in every seat's system message
    num_seats = 2

    def __init__(self, id: str | None = None, rewards: Any = None, format_reward: float | None = None,
                 invalid_penalty: float | None = None, draw_reward: float | None = None, max_turns: int = 50,
                 prompt: str = "full", history: bool = True):
        self.id = id or self.name
        self.rewards = RewardConfig.from_spec(rewards, format_reward=format_reward,
                                              invalid_penalty=invalid_penalty, draw_reward=draw_reward)
        self.max_turns, self.prompt, self.history = int(max_turns), prompt, bool(history)

    # --- what a game defines --------------------------------------------------------------------
    name = "custom"

    def new_state(self, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def to_move(self, state: Any) -> int:
        raise NotImplementedError

    def legal(self, state: Any, seat: int) -> list[str]:
        raise NotImplementedError

    def play(self, state: Any, seat: int, action: str) -> list[float] | None:
        """Apply a legal action in place; the payoffs per seat when the game ends, else None."""
        raise NotImplementedError

    def view(self, state: Any, seat: int) -> str:
        raise NotImplementedError

    def start_states(self) -> list[tuple[Any, float]]:
        """Every state `new_state` can return, with its probability, for exact evaluation.
        Optional: a game without it cannot be evaluated exactly."""
        raise ValueError(f"env '{self.id}' draws its start state itself; define start_states() to enumerate it")

    # --- the env protocol -------------------------------------------------------------------------
    def reset(self, seed: int) -> "CustomState":
        return CustomState(self, seed)

    def reset_explicit_chance(self) -> "CustomState":
        """A state waiting for its start state to be chosen among `start_states()`."""
        return CustomState(self, 0, starts=self.start_states())


class CustomState(EnvState):
    def __init__(self, game: CustomGame, seed: int, starts: list[tuple[Any, float]] | None = None):
        self.game = game
        # with `starts`, the start state is a pending chance event (exact evaluation)
        self.starts = starts
        self.state = None if starts is not None else game.new_state(np.random.default_rng(seed))
        n = game.num_seats
        self.chats: list[list[dict]] = [[{"role": "system", "content": self._system(s)}] for s in range(n)]
        self.total = [0.0] * n
        self.payoffs = [0.0] * n
        self.result: list[str] | None = None
        self.moves = 0
        if starts is None:
            self._open_turn()

    def chance_outcomes(self) -> list[tuple[int, float]]:
        return [(i, p) for i, (_, p) in enumerate(self.starts)] if self.starts is not None else []

    def apply_chance(self, outcome: int) -> None:
        if self.starts is None:
            raise ValueError("no chance event is pending")
        self.state = copy.deepcopy(self.starts[outcome][0])
        self.starts = None
        self._open_turn()

    def clone(self) -> "CustomState":
        twin = copy.copy(self)
        twin.state = copy.deepcopy(self.state)
        twin.chats = [list(chat) for chat in self.chats]  # messages are never changed, only appended
        twin.total, twin.payoffs = list(self.total), list(self.payoffs)
        twin.result = None if self.result is None else list(self.result)
        return twin

    def _system(self, seat: int) -> str:
        return (f"{self.game.name.replace('_', ' ').title()}. {self.game.rules} You are player {seat}. "
                "Answer <answer>ACTION</answer> with a legal action.")

    def _open_turn(self) -> None:
        if self.result is None:
            seat = self.game.to_move(self.state)
            text = f"Legal actions: {' '.join(self.game.legal(self.state, seat))}\n{self.game.view(self.state, seat)}"
            if not self.game.history:
                self.chats[seat] = self.chats[seat][:1]
            self.chats[seat].append({"role": "user", "content": text})

    def current_seats(self) -> list[int]:
        return [] if self.result is not None or self.state is None else [self.game.to_move(self.state)]

    def messages(self, seat: int) -> list[dict]:
        return [dict(m) for m in self.chats[seat]]

    def legal_actions(self, seat: int) -> list[str]:
        return self.game.legal(self.state, seat) if seat in self.current_seats() else []

    def apply(self, seat: int, text: str) -> StepResult:
        if seat not in self.current_seats():
            raise ValueError(f"seat {seat} is not to act (to act: {self.current_seats()})")
        self.chats[seat].append({"role": "assistant", "content": text})
        action = parse_action(text, self.game.legal(self.state, seat))
        if action is None:
            return self.apply_invalid(seat)
        r = self.game.rewards
        rewards = {s: 0.0 for s in range(self.game.num_seats)}
        rewards[seat] += r.format_reward if r.mode == "mars" else 0.0
        payoffs = self.game.play(self.state, seat, action)
        self.moves += 1
        if payoffs is None and self.moves >= self.game.max_turns:
            payoffs = [0.0] * self.game.num_seats
        if payoffs is not None:
            self._finish(payoffs, rewards)
        self._credit(rewards)
        self._open_turn()
        return StepResult(rewards, True, action, self.result is not None)

    def apply_invalid(self, seat: int, reason: str = "invalid") -> StepResult:
        r = self.game.rewards
        rewards = {s: 0.0 for s in range(self.game.num_seats)}
        rewards[seat] = -(1.0 + r.invalid_penalty) if r.mode == "mars" else -1.0
        self.result = ["invalid" if s == seat else "win" for s in range(self.game.num_seats)]
        self._credit(rewards)
        return StepResult(rewards, False, None, True)

    def _finish(self, payoffs: list[float], rewards: dict[int, float]) -> None:
        self.payoffs = [float(p) for p in payoffs]
        best = max(payoffs)
        draw = len(set(payoffs)) == 1
        self.result = ["draw" if draw else "win" if p == best else "loss" for p in payoffs]
        for s, p in enumerate(payoffs):
            mars_draw = draw and p == 0 and self.game.rewards.mode == "mars"
            rewards[s] += self.game.rewards.draw_reward if mars_draw else p

    def _credit(self, rewards: dict[int, float]) -> None:
        for s, v in rewards.items():
            self.total[s] += v

    def is_terminal(self) -> bool:
        return self.result is not None

    def returns(self) -> list[float]:
        return list(self.total)

    def game_returns(self) -> list[float]:
        return list(self.payoffs)

    def outcomes(self) -> list[str]:
        if self.result is None:
            raise ValueError("outcomes are defined only at the end of an episode")
        return list(self.result)

    def action_text(self, action_id: int, seat: int | None = None) -> str:
        raise ValueError(f"'{self.game.id}' is a custom game: it has no native action ids")
