"""`mas play`: a human against a checkpoint in the terminal.

The agent plays every seat but the human's, under the env settings and role prompt it was trained
with when the checkpoint sits in a mas run folder (a model trained on compact prompts is lost on
full ones). The human sees the board of a perfect-information game, elsewhere only their own view
(the env's last message to their seat): never the agent's cards. Chance events and the agent's
sampling follow --seed."""
from __future__ import annotations

import dataclasses
import re
import sys
from typing import TextIO

from mas.agents.backends.base import Generation, GenerationRequest
from mas.agents.chat import PromptTokenizer
from mas.evaluation.loading import LoadedPolicy, load_policy, policy_folder, trained_setup
from mas.games import make, parse_action
from mas.orchestration.rollout import answer_candidates
from mas.seeding import AGENT_MOVE_STREAM, stable_seed

QUIT_WORDS = ("quit", "exit")


def parse_human(text: str, legal: list[str]) -> str | None:
    """A legal action from loose human input: anything `parse_action` accepts ("x(1,1)",
    "<X(1,1)>", "pass"), or just the numbers of exactly one legal action ("1,1", "1 1")."""
    action = parse_action(text, legal)
    if action is not None:
        return action
    if not re.fullmatch(r"[\d\s,()]*\d[\d\s,()]*", text):  # numbers only: "o(1,1)" is no X move
        return None
    numbers = re.findall(r"\d+", text)
    matches = [a for a in legal if re.findall(r"\d+", a) == numbers]
    return matches[0] if len(matches) == 1 else None


def human_view(state, seat: int, legal: list[str], board: bool) -> str:
    """The board of a perfect-information game (`board`); elsewhere the env's last message to
    `seat` (its own view only), without the legal-actions line that is printed separately."""
    if board:
        return str(state.native())
    users = [m["content"] for m in state.messages(seat) if m["role"] == "user"]
    if not users:
        return ""
    listed = "Legal actions: " + " ".join(legal)
    return "\n".join(line for line in users[-1].splitlines() if line.strip() != listed)


@dataclasses.dataclass
class AgentSide:
    """The checkpoint's side of the table: one generate call per move."""

    loaded: LoadedPolicy
    seed: int
    moves: int = 0

    def __post_init__(self):
        self.prompts = PromptTokenizer(self.loaded.tokenizer)

    def answer(self, state, seat: int) -> Generation:
        agent = self.loaded.agent
        # Each turn a fresh prompt of the seat's whole chat: same text as in training, and play
        # needs no log-probabilities of earlier turns.
        ids = self.prompts.first(agent.with_role(state.messages(seat)))
        candidates = answer_candidates(self.prompts, state, seat, agent)
        seed = stable_seed(self.seed, AGENT_MOVE_STREAM, self.moves)
        self.moves += 1
        return self.loaded.handle.call("generate", [GenerationRequest(ids, candidates)], agent.sampling, seed)[0]


class Table:
    """One game in the terminal: prints to `out`, reads the human's moves from `inp`."""

    def __init__(self, env, state, human: int, agent: AgentSide, inp: TextIO, out: TextIO):
        self.state, self.seats, self.human, self.agent = state, env.num_seats, human, agent
        self.board = env.perfect_information and env.game is not None  # a pyspiel board to print
        self.inp, self.out = inp, out
        self.log: list[str] = []  # "you <BET>", "agent <PASS>": the moves, for the final view

    def say(self, text: str = "", end: str = "\n") -> None:
        print(text, end=end, file=self.out, flush=True)

    def agent_name(self, seat: int) -> str:
        return "agent" if self.seats == 2 else f"agent (seat {seat})"

    def play(self) -> int:
        while not self.state.is_terminal():
            # the human first: at a simultaneous move the agent's choice is printed only after theirs
            for seat in sorted(self.state.current_seats(), key=lambda s: s != self.human):
                if self.state.is_terminal():
                    break
                if seat == self.human:
                    if not self.human_turn():
                        return 0
                else:
                    self.agent_turn(seat)
        self.finish()
        return 0

    def human_turn(self) -> bool:
        """Ask until a legal move is given and play it; False when the human quits or input ends."""
        legal = self.state.legal_actions(self.human)
        self.say(f"\n--- your turn (seat {self.human}) ---")
        view = human_view(self.state, self.human, legal, self.board)
        if view:
            self.say(view)
        self.say("legal moves: " + " ".join(legal))
        while True:
            self.say("your move: ", end="")
            line = self.inp.readline()
            if not line:
                self.say("\nend of input: game abandoned, no result.")
                return False
            text = line.strip()
            if not text:
                continue
            action = parse_human(text, legal)
            if action is None and text.lower() in QUIT_WORDS:
                self.say("you quit: game abandoned, no result.")
                return False
            if action is None:
                self.say(f"'{text}' is not a legal move; legal moves: {' '.join(legal)}")
                continue
            self.state.apply(self.human, action)
            self.log.append(f"you {action}")
            return True

    def agent_turn(self, seat: int) -> None:
        gen = self.agent.answer(self.state, seat)
        name = self.agent_name(seat)
        if not gen.finished:
            self.state.apply_invalid(seat, "cut off at max_new_tokens")
            self.say(f"{name} answered {gen.text!r}, cut off at max_new_tokens: an invalid move, the game ends")
            self.log.append(f"{name} (invalid)")
            return
        result = self.state.apply(seat, gen.text)
        if result.valid:
            self.say(f"{name} plays {result.action}")
            self.log.append(f"{name} {result.action}")
        else:
            self.say(f"{name} answered {gen.text!r}, not a legal move: an invalid move, the game ends")
            self.log.append(f"{name} (invalid)")

    def finish(self) -> None:
        self.say("\n--- game over ---")
        if self.board:
            self.say(str(self.state.native()))
        self.say("moves: " + (", ".join(self.log) if self.log else "none"))
        outcome = self.state.outcomes()[self.human]
        words = {"win": "you win", "draw": "draw", "loss": "you lose", "invalid": "you lose (invalid move)"}
        line = f"result: {words.get(outcome, outcome)}"
        scores = self.state.game_returns()
        if any(scores):  # 0 everywhere after an invalid move or a turn-limit draw: nothing to add
            parts = [f"you {scores[self.human]:+g}"] + [
                f"{self.agent_name(s)} {v:+g}" for s, v in enumerate(scores) if s != self.human
            ]
            line += f" ({', '.join(parts)})"
        self.say(line)


def run_play(args, inp: TextIO | None = None, out: TextIO | None = None) -> int:
    inp = inp if inp is not None else sys.stdin
    out = out if out is not None else sys.stdout
    policy_dir = policy_folder(args.policy)
    env, role = trained_setup(policy_dir, args.env)
    source = "as in its run config" if env is not None else "defaults"
    env = env or make(args.env)
    if not 0 <= args.seat < env.num_seats:
        raise ValueError(f"--seat must be 0..{env.num_seats - 1} for {env.id}, got {args.seat}")
    loaded = load_policy(str(policy_dir), name="agent", temperature=args.temperature, constrained=args.constrained)
    if role:
        loaded.agent = dataclasses.replace(loaded.agent, role_prompt=role)
    state = env.reset(args.seed)
    print(f"mas play: you are seat {args.seat} of {env.num_seats} on {env.id} ({source}), against {loaded.path} "
          f"(constrained={loaded.agent.constrained}, temperature={args.temperature:g}, seed {args.seed}). "
          f"Type a move, or 'quit'.", file=out, flush=True)
    try:
        return Table(env, state, args.seat, AgentSide(loaded, args.seed), inp, out).play()
    except KeyboardInterrupt:
        print("\ninterrupted: game abandoned, no result.", file=out, flush=True)
        return 130
