"""Non-LLM players: uniform random, OpenSpiel MCTS and the CFR average policy (Kuhn, Leduc).

A bot answers with the exact legal action string, drawing all its randomness from the
`numpy.random.Generator` the caller passes, so evaluation is reproducible.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

import numpy as np

from mas.games.base import Env, EnvState

__all__ = ["Bot", "RandomBot", "MCTSBot", "CFRBot", "make", "check_spec", "ALLOWED_SPECS"]

ALLOWED_SPECS = ("random, mcts:N (N simulations, e.g. mcts:100), cfr (kuhn_poker, leduc_poker), "
                 "checkpoint:PATH, pool")
# Opponents that a run serves from a policy worker, not in-process bots: `check_spec` accepts
# them so configs validate, `make` refuses them.
SERVED_SPECS = {
    "checkpoint": "'{spec}' is a frozen policy served by a worker, not an in-process bot",
    "pool": "'{spec}' is the pool of frozen policies served by workers, not an in-process bot",
}


@runtime_checkable
class Bot(Protocol):
    name: str

    def act(self, state: EnvState, seat: int, rng: np.random.Generator) -> str:
        """A legal action string for `seat`, which is to act in `state`."""
        ...


class RandomBot:
    """Uniform over the legal actions."""

    def __init__(self, name: str = "random"):
        self.name = name

    def act(self, state: EnvState, seat: int, rng: np.random.Generator) -> str:
        legal = state.legal_actions(seat)
        if not legal:
            raise ValueError(f"bot '{self.name}' needs a game with a list of legal actions")
        return legal[int(rng.integers(len(legal)))]


class MCTSBot:
    """OpenSpiel's MCTSBot: UCT with uct_c = 2, a random-rollout evaluator (10 rollouts), N
    simulations. Each move reseeds the search from the caller's rng.

    In imperfect-information games (Kuhn, Leduc) the bot must not see hidden cards: it searches
    from one determinization, the state resampled from the seat's information state
    (`State.resample_from_infostate`), drawn from the same rng.
    """

    def __init__(self, name: str, env: Env, simulations: int):
        from open_spiel.python.algorithms import mcts  # heavy-ish import, only when used
        import pyspiel

        game = env.game
        if game is None:
            raise ValueError(f"bot '{name}' needs an OpenSpiel env; env '{env.id}' has no pyspiel game")
        gtype = game.get_type()
        if gtype.dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
            raise ValueError(f"bot '{name}' needs a sequential game; '{env.id}' is not")
        if gtype.reward_model != pyspiel.GameType.RewardModel.TERMINAL:
            raise ValueError(f"bot '{name}' needs a game with terminal rewards; '{env.id}' is not")
        self.name = name
        self.simulations = simulations
        self._imperfect = gtype.information != pyspiel.GameType.Information.PERFECT_INFORMATION
        self._evaluator = mcts.RandomRolloutEvaluator(n_rollouts=10, random_state=np.random.RandomState(0))
        self._bot = mcts.MCTSBot(
            game,
            uct_c=2,
            max_simulations=simulations,
            evaluator=self._evaluator,
            random_state=np.random.RandomState(0),
        )

    def act(self, state: EnvState, seat: int, rng: np.random.Generator) -> str:
        rs = np.random.RandomState(int(rng.integers(2**32)))
        # OpenSpiel keeps both random states private; reseed them so a move depends on rng only.
        self._bot._random_state = rs
        self._evaluator._random_state = rs
        native = state.native()
        if self._imperfect:
            native = native.resample_from_infostate(seat, rs.random_sample)
        action = self._bot.step(native)
        return state.action_text(int(action), seat)


class CFRBot:
    """The CFR average policy (`mas.agents.cfr`, solved once and cached), sampled with the caller's
    rng at the seat's information state. Kuhn and Leduc poker only."""

    def __init__(self, name: str, env: Env):
        from mas.agents import cfr

        game = env.game
        if game is None:
            raise ValueError(f"bot '{name}' plays only kuhn_poker and leduc_poker; env '{env.id}' is not an OpenSpiel game")
        self.name = name
        self.policy = cfr.load_or_solve(cfr.check_game(game))
        self.iterations = self.policy.iterations
        self.exploitability = self.policy.exploitability

    def act(self, state: EnvState, seat: int, rng: np.random.Generator) -> str:
        info = state.native().information_state_string(seat)
        pairs = self.policy.table.get(info)
        if pairs is None:
            raise ValueError(f"bot '{self.name}': no CFR policy for information state '{info}'")
        probs = np.asarray([p for _, p in pairs], dtype=np.float64)
        action = pairs[int(rng.choice(len(pairs), p=probs / probs.sum()))][0]
        return state.action_text(int(action), seat)


def check_spec(spec: str) -> None:
    """Raise ValueError (one line) unless `spec` names a known opponent (an in-process bot, or one
    a run serves: checkpoint:PATH, pool)."""
    _parse(spec)


def _parse(spec: str) -> tuple[str, int | str]:
    spec = str(spec).strip()
    if spec in ("random", "cfr", "pool"):
        return spec, 0
    m = re.fullmatch(r"mcts:(\d+)", spec)
    if m and int(m.group(1)) > 0:
        return "mcts", int(m.group(1))
    m = re.fullmatch(r"checkpoint:(.+)", spec)
    if m:
        return "checkpoint", m.group(1)
    raise ValueError(f"unknown bot '{spec}'; allowed: {ALLOWED_SPECS}")


def make(spec: str, env: Env) -> Bot:
    """An in-process bot by spec: "random", "mcts:N" or "cfr"; served specs raise ValueError."""
    kind, n = _parse(spec)
    spec = str(spec).strip()
    if kind in SERVED_SPECS:
        raise ValueError(SERVED_SPECS[kind].format(spec=spec))
    if kind == "random":
        return RandomBot(spec)
    if kind == "cfr":
        return CFRBot(spec, env)
    return MCTSBot(spec, env, int(n))
