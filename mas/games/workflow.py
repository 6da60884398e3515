"""Multi-agent workflows declared in YAML, as envs: their seats are agents, a task poses the question
and scores the system's final answer, and every seat shares the team reward.

Types (registered by name):
  chain   a -> b -> c: each agent answers once and sees the question and every earlier answer;
          the system's answer is the last one.
  loop    solver -> verifier, until the verifier approves or `max_rounds` solver turns (Dr. MAS's
          math system); the system's answer is the solver's last.
  debate  n agents answer the question at once, for `max_rounds` rounds, each round seeing the
          others' previous answers; then `aggregator` (if any) gives the answer, else a majority
          vote of the last round.
  router  the router names the next agent with `<route>NAME</route>` (or `done` once someone has
          answered); that agent answers; at most `max_rounds` answers. The system's answer is the
          last one.

Rewards (as in Dr. MAS, arXiv:2602.08847): `correct_reward` to every seat when the system's answer is right,
0 otherwise; an output that does not parse costs its author `invalid_penalty` at once and the
workflow goes on (a verifier's or router's unreadable verdict counts as reject / ends the run).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from mas.games.arithmetic import ArithmeticTask, Problem
from mas.games.base import Env, EnvState, StepResult, extract_answer, register_env

__all__ = ["WorkflowSpec", "WorkflowEnv", "WORKFLOW_TYPES", "TASKS"]

TASKS: dict[str, Callable[..., Any]] = {"arithmetic": ArithmeticTask}

VERIFY = "Reply <verify>approve</verify> if the answer is correct, else <verify>reject</verify>."
_VERIFY_RE = re.compile(r"<verify>\s*(approve|reject)\s*</verify>", re.IGNORECASE)
_ROUTE_RE = re.compile(r"<route>\s*([\w.-]+)\s*</route>", re.IGNORECASE)


@dataclass(frozen=True)
class WorkflowSpec:
    type: str
    agents: tuple[str, ...]  # chain order; loop: (solver, verifier); debate: debaters; router: experts
    max_rounds: int = 2
    aggregator: str | None = None  # debate only
    router: str | None = None  # router only
    correct_reward: float = 1.0
    invalid_penalty: float = 0.1

    def seat_names(self) -> list[str]:
        if self.type == "router":
            return [self.router, *self.agents]
        if self.type == "debate" and self.aggregator:
            return [*self.agents, self.aggregator]
        return list(self.agents)


# --- the shared state machinery -----------------------------------------------------------------

class WorkflowState(EnvState):
    """One episode: one question, per-seat chats, the answers so far. Subclasses decide who acts
    next (`_advance`) and what each seat is told (`_news`)."""

    reads_cut_off_answers = True  # an answer cut off at max_new_tokens is read as written (the rollout)

    def __init__(self, env: "WorkflowEnv", seed: int):
        self.env, self.spec = env, env.spec
        self.problem: Problem = env.task.problem(seed)
        n = len(self.spec.seat_names())
        self.chats: list[list[dict]] = [[] for _ in range(n)]
        self._chat_turn = [-1] * n  # the turn each seat's chat was last built for
        self.last_text: list[str | None] = [None] * n
        self.rewards = [0.0] * n
        self.answers: list[tuple[int, Any]] = []  # (seat, parsed answer) in order
        self.answer_texts: list[str] = []  # the text of each answer, in the same order
        self.to_act: list[int] = []
        self.last_actor: int | None = None
        self.turns_taken = [0] * n
        self.final: int | None = None
        self.done = False
        self._advance()

    # --- protocol -----------------------------------------------------------------------------
    def current_seats(self) -> list[int]:
        return [] if self.done else list(self.to_act)

    def messages(self, seat: int) -> list[dict]:
        if self._chat_turn[seat] == self.turns_taken[seat]:  # already built for this turn
            return list(self.chats[seat])
        self._chat_turn[seat] = self.turns_taken[seat]
        news = self._news(seat)
        system = {"role": "system", "content": self._system(seat)}
        question = f"Question: {self.problem.question}"
        if not self.chats[seat]:
            self.chats[seat] = [system, {"role": "user", "content": "\n".join([question, *news])}]
        elif self.env.history:
            self.chats[seat] += [{"role": "assistant", "content": self.last_text[seat]},
                                 {"role": "user", "content": "\n".join(news)}]
        else:  # a fresh chat each turn: the question and the latest news only
            self.chats[seat] = [system, {"role": "user", "content": "\n".join([question, *news])}]
        return list(self.chats[seat])

    def legal_actions(self, seat: int) -> list[str]:
        return self.env.task.answers() if self._role(seat) == "solve" else self._choices(seat)

    def answer_template(self, seat: int) -> str:
        """How a constrained answer is written for this seat."""
        return {"solve": "\\boxed{{{action}}}", "verify": "<verify>{action}</verify>",
                "route": "<route>{action}</route>"}[self._role(seat)]

    def apply(self, seat: int, text: str) -> StepResult:
        if seat not in self.to_act or self.done:
            raise ValueError(f"seat {seat} is not to act now (acting: {self.to_act})")
        self.to_act.remove(seat)
        self.last_text[seat], self.last_actor = text, seat
        self.turns_taken[seat] += 1
        valid = self._take(seat, text)
        rewards = {} if valid else {seat: -self.spec.invalid_penalty}
        for s, r in rewards.items():
            self.rewards[s] += r
        if not self.to_act:
            self._advance()
        if self.done:
            rewards = self._pay_team(rewards)
        parts = {} if valid else {seat: {"invalid": -self.spec.invalid_penalty}}
        return StepResult(rewards=rewards, valid=valid, action=text if valid else None, terminal=self.done,
                          parts=parts)

    def apply_invalid(self, seat: int, reason: str = "invalid") -> StepResult:
        return self.apply(seat, "")

    def is_terminal(self) -> bool:
        return self.done

    def returns(self) -> list[float]:
        return list(self.rewards)

    def game_returns(self) -> list[float]:
        return [float(self.correct())] * len(self.rewards) if self.done else [0.0] * len(self.rewards)

    def outcomes(self) -> list[str]:
        return ["win" if self.correct() else "loss"] * len(self.rewards)

    def correct(self) -> bool:
        return self.final is not None and self.env.task.check(self.final, self.problem)

    def outcome_key(self, seat: int) -> str:
        """The system's final answer ("" for none): samples of a problem that agree share it."""
        return "" if self.final is None else str(self.final)

    def info(self) -> dict:
        """The system's answer, for evaluation: its text and parsed value."""
        return {"final_text": self.final_text, "final": self.final, "turns": sum(self.turns_taken)}

    @property
    def final_text(self) -> str | None:
        """The text of the answer that became the system's answer (None: no readable answer)."""
        if self.final is None:
            return None
        for (_, value), text in zip(reversed(self.answers), reversed(self.answer_texts)):
            if value == self.final:
                return text
        return None

    # --- helpers for subclasses ---------------------------------------------------------------
    def _pay_team(self, rewards: dict[int, float]) -> dict[int, float]:
        if not self.correct():
            return rewards
        rewards = dict(rewards)
        for s in range(len(self.rewards)):
            rewards[s] = rewards.get(s, 0.0) + self.spec.correct_reward
            self.rewards[s] += self.spec.correct_reward
        return rewards

    def _name(self, seat: int) -> str:
        return self.spec.seat_names()[seat]

    def _solve(self, seat: int, text: str) -> bool:
        value = self.env.task.parse(text)
        self.answers.append((seat, value))
        self.answer_texts.append(text)
        return value is not None

    def _quote(self, seat: int) -> str:
        return f"{self._name(seat)} answered: {extract_answer(self.last_text[seat] or '') or '(nothing)'}"

    def _role(self, seat: int) -> str:
        return "solve"

    def _choices(self, seat: int) -> list[str]:
        return []

    def _system(self, seat: int) -> str:
        return f"You are {self._name(seat)} in a team that answers word problems. {self.env.task.instruction}"

    # --- per type -----------------------------------------------------------------------------
    def _advance(self) -> None:
        raise NotImplementedError

    def _news(self, seat: int) -> list[str]:
        raise NotImplementedError

    def _take(self, seat: int, text: str) -> bool:
        return self._solve(seat, text)


WORKFLOW_TYPES: dict[str, type[WorkflowState]] = {}


def register_workflow(name: str):
    def wrap(cls):
        WORKFLOW_TYPES[name] = cls
        return cls
    return wrap


@register_workflow("chain")
class ChainState(WorkflowState):
    def _advance(self) -> None:
        acted = len(self.answers)
        if acted == len(self.chats):
            self.final = self.answers[-1][1]
            self.done = True
        else:
            self.to_act = [acted]

    def _news(self, seat: int) -> list[str]:
        return [self._quote(s) for s, _ in self.answers] + [self.env.task.instruction]


@register_workflow("loop")
class LoopState(WorkflowState):
    SOLVER, VERIFIER = 0, 1

    def _role(self, seat: int) -> str:
        return "verify" if seat == self.VERIFIER else "solve"

    def _choices(self, seat: int) -> list[str]:
        return ["approve", "reject"]

    def _system(self, seat: int) -> str:
        if seat == self.VERIFIER:
            return f"You are {self._name(seat)}, who checks a solver's answer to a word problem. {VERIFY}"
        return super()._system(seat)

    def _take(self, seat: int, text: str) -> bool:
        if seat == self.SOLVER:
            return self._solve(seat, text)
        found = _VERIFY_RE.findall(text) or [w for w in [extract_answer(text).lower()] if w in ("approve", "reject")]
        self.approved = bool(found) and found[-1].lower() == "approve"  # unreadable counts as reject
        return bool(found)

    def _advance(self) -> None:
        if self.last_actor is None:
            self.to_act = [self.SOLVER]
        elif self.last_actor == self.SOLVER:
            self.to_act = [self.VERIFIER]
        elif not self.approved and len(self.answers) < self.spec.max_rounds:
            self.to_act = [self.SOLVER]
        else:  # approved, or the last round is over
            self.final = self.answers[-1][1]
            self.done = True

    def _news(self, seat: int) -> list[str]:
        if seat == self.VERIFIER:
            return [self._quote(self.SOLVER), VERIFY]
        if not self.answers:
            return [self.env.task.instruction]
        return [f"{self._name(self.VERIFIER)} rejected your answer. Try again. {self.env.task.instruction}"]


@register_workflow("debate")
class DebateState(WorkflowState):
    def __init__(self, env, seed):
        self.round = 0
        self.debaters = len(env.spec.agents)
        super().__init__(env, seed)

    def _advance(self) -> None:
        if self.round < self.spec.max_rounds:
            self.to_act = list(range(self.debaters))
            self.round += 1
        elif self.spec.aggregator and len(self.answers) == self.debaters * self.spec.max_rounds:
            self.to_act = [self.debaters]
        else:
            if self.spec.aggregator:
                self.final = self.answers[-1][1]
            else:  # majority of the last round's readable answers; ties go to the earliest seat
                last = [v for _, v in self.answers[-self.debaters:] if v is not None]
                self.final = Counter(last).most_common(1)[0][0] if last else None
            self.done = True

    def _round_answers(self, r: int) -> list[tuple[int, int | None]]:
        return self.answers[r * self.debaters:(r + 1) * self.debaters]

    def _news(self, seat: int) -> list[str]:
        if seat == self.debaters:  # the aggregator sees every debater's final answer
            return [self._quote(s) for s, _ in self._round_answers(self.spec.max_rounds - 1)] + [self.env.task.instruction]
        if self.round == 1:
            return [self.env.task.instruction]
        prior = self._round_answers(self.round - 2)
        return ["The others answered:", *(self._quote(s) for s, _ in prior if s != seat), self.env.task.instruction]


@register_workflow("router")
class RouterState(WorkflowState):
    ROUTER = 0

    def __init__(self, env, seed):
        self.route: str | None = None
        super().__init__(env, seed)

    def _role(self, seat: int) -> str:
        return "route" if seat == self.ROUTER else "solve"

    def _choices(self, seat: int) -> list[str]:
        return list(self.spec.agents) + (["done"] if self.answers else [])

    def _system(self, seat: int) -> str:
        if seat == self.ROUTER:
            names = ", ".join(self.spec.agents)
            return (f"You are {self._name(seat)}: you pick who answers a word problem next, one of {names}, "
                    "or done once an answer is good. Reply <route>NAME</route>.")
        return super()._system(seat)

    def _take(self, seat: int, text: str) -> bool:
        if seat != self.ROUTER:
            self.route = None
            return self._solve(seat, text)
        found = _ROUTE_RE.findall(text) or [extract_answer(text)]
        choice = found[-1].strip()
        self.route = choice if choice in self._choices(seat) else "invalid"
        return self.route != "invalid"

    def _advance(self) -> None:
        if self.route is None and len(self.answers) < self.spec.max_rounds:
            self.to_act = [self.ROUTER]
        elif self.route in self.spec.agents:
            self.to_act = [1 + self.spec.agents.index(self.route)]
        else:  # done, an unreadable route, or no answers left
            self.final = self.answers[-1][1] if self.answers else None
            self.done = True

    def _news(self, seat: int) -> list[str]:
        if seat == self.ROUTER:
            return [self._quote(s) for s, _ in self.answers[-1:]] + ["Reply <route>NAME</route>."]
        return [self._quote(s) for s, _ in self.answers] + [self.env.task.instruction]


# --- the env ----------------------------------------------------------------------------------

class WorkflowEnv(Env):
    team = True  # every seat is on one side: evaluation measures the system's accuracy

    def __init__(self, spec: WorkflowSpec, task, *, id: str | None = None, history: bool = True):
        if spec.type not in WORKFLOW_TYPES:
            raise ValueError(f"workflow type '{spec.type}' unknown; allowed: {', '.join(sorted(WORKFLOW_TYPES))}")
        _check_shape(spec)
        self.spec, self.task, self.history = spec, task, history
        self.id = id or f"{spec.type}:{task.name}"
        self.num_seats = len(spec.seat_names())
        self.seat_names = spec.seat_names()

    def reset(self, seed: int) -> WorkflowState:
        return WORKFLOW_TYPES[self.spec.type](self, seed)

    def __repr__(self) -> str:
        return f"WorkflowEnv({self.spec.type}, seats={self.seat_names}, task={self.task.name})"


def _check_shape(spec: WorkflowSpec) -> None:
    need = {"loop": (2, 2), "chain": (1, None), "debate": (2, None), "router": (1, None)}[spec.type]
    n = len(spec.agents)
    if n < need[0] or (need[1] is not None and n > need[1]):
        size = f"exactly {need[0]}" if need[0] == need[1] else f"at least {need[0]}"
        raise ValueError(f"workflow '{spec.type}' needs {size} agents in workflow.agents, got {n}")
    if spec.max_rounds < 1:
        raise ValueError(f"workflow max_rounds must be >= 1, got {spec.max_rounds}")
    if spec.type == "router" and not spec.router:
        raise ValueError("workflow 'router' needs workflow.router: the agent that routes")
    if spec.aggregator and spec.type != "debate":
        raise ValueError("workflow.aggregator applies to type 'debate' only")
    names = spec.seat_names()
    if len(set(names)) != len(names):
        raise ValueError(f"workflow seats must be distinct agents, got {names}")


@register_env("workflow")
def workflow_env(workflow: dict, task: dict | None = None, id: str | None = None, history: bool = True) -> WorkflowEnv:
    options = dict(workflow)
    options["agents"] = tuple(options.get("agents") or ())
    spec = WorkflowSpec(**options)
    task = dict(task or {"name": "arithmetic"})
    name = task.pop("name", "arithmetic")
    if name not in TASKS:
        raise ValueError(f"workflow task '{name}' unknown; allowed: {', '.join(sorted(TASKS))}")
    return WorkflowEnv(spec, TASKS[name](**task), id=id, history=history)
