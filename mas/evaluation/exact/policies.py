"""Policies with a defined action distribution at every decision point, for exact evaluation.

A policy answers `probs(tree, node)`: the probability of each of the node's legal actions, in the
tree's order. Its `observer` saw every decision point while the tree was walked (`observe`) and
computed what it needs once the walk ended (`resolve`): a model scores all its distinct prompts in
large batches there. Kinds:

- `FunctionPolicy`: a plain function `(state, seat) -> {legal action string: probability}`;
- `RandomPolicy`: uniform over the legal actions;
- `CFRPolicy`: the `cfr` bot's average policy (Kuhn, Leduc);
- `PerfectPolicy`: a solver of the whole tree, uniform among the moves of highest value for the
  mover (perfect-information games);
- `ModelPolicy`: an LLM agent's constrained answer probabilities, at its sampling settings or
  greedy, with its prompts built exactly as in a rollout."""
from __future__ import annotations

import sys
import time
from dataclasses import replace
from typing import Any, Callable

from mas.agents.agent import Agent
from mas.agents.backends.base import GenerationRequest, SamplingParams
from mas.agents.chat import PromptTokenizer
from mas.evaluation.exact.tree import CHANCE, DECISION, GameTree

PROB_TOL = 1e-6
REQUESTS_PER_CALL = 4096  # prompts per model call: progress is printed between calls


class Policy:
    """What exact evaluation asks of a policy; `observer` walks the tree with it."""

    name: str = ""

    @property
    def observer(self):
        return self

    def observe(self, state, seat: int, node: int, previous) -> Any:
        return None

    def resolve(self, tree: GameTree) -> None:
        """Called once the walk is done, before any `probs`."""

    def probs(self, tree: GameTree, node: int) -> list[float]:
        raise NotImplementedError


class RandomPolicy(Policy):
    name = "random"

    def probs(self, tree: GameTree, node: int) -> list[float]:
        n = len(tree.actions[node])
        return [1.0 / n] * n


class FunctionPolicy(Policy):
    """`fn(state, seat) -> {legal action: probability}`; unlisted actions get 0."""

    def __init__(self, fn: Callable, name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "function")

    def observe(self, state, seat: int, node: int, previous) -> list[float]:
        legal = state.legal_actions(seat)
        dist = self.fn(state, seat)
        unknown = [a for a in dist if a not in legal]
        if unknown:
            raise ValueError(f"policy '{self.name}': '{unknown[0]}' is not a legal action here (legal: {', '.join(legal)})")
        probs = [float(dist.get(a, 0.0)) for a in legal]
        if any(p < 0 for p in probs) or abs(sum(probs) - 1.0) > PROB_TOL:
            raise ValueError(f"policy '{self.name}': probabilities must be >= 0 and sum to 1, got {dist}")
        return probs

    def probs(self, tree: GameTree, node: int) -> list[float]:
        return tree.handles[self.name][node]


class CFRPolicy(Policy):
    """The CFR average policy the `cfr` bot samples from, read at the node's information state."""

    def __init__(self, env, name: str = "cfr"):
        from mas.agents import cfr

        if env.game is None:
            raise ValueError(f"cfr plays only kuhn_poker and leduc_poker; env '{env.id}' is not an OpenSpiel game")
        self.name = name
        self.solved = cfr.load_or_solve(cfr.check_game(env.game))
        self.table = {info: dict(pairs) for info, pairs in self.solved.table.items()}

    def probs(self, tree: GameTree, node: int) -> list[float]:
        row = self.table.get(tree.info[node])
        if row is None:
            raise ValueError(f"cfr: no policy for information state '{tree.info[node]}'")
        return [row.get(a, 0.0) for a in tree.action_ids[node]]


class PerfectPolicy(Policy):
    """Plays a best move for itself assuming every seat does (the tree solved by backward
    induction, chance by expectation), uniformly among moves of equal value."""

    name = "perfect"
    TIE = 1e-9

    def __init__(self, env):
        if not env.perfect_information:
            raise ValueError(f"the perfect player needs a perfect-information game; in '{env.id}' seats hold hidden "
                             "information (use cfr or random)")
        self.best: dict[int, list[int]] = {}

    def resolve(self, tree: GameTree) -> None:
        values: list[tuple[float, ...]] = [()] * len(tree)
        for node in tree.bottom_up:
            kind, kids = tree.kind[node], tree.children[node]
            if kind == DECISION:
                seat = tree.seat[node]
                top = max(values[c][seat] for c in kids)
                best = [i for i, c in enumerate(kids) if values[c][seat] >= top - self.TIE]
                self.best[node] = best
                values[node] = _mean([values[kids[i]] for i in best], [1.0 / len(best)] * len(best))
            elif kind == CHANCE:
                values[node] = _mean([values[c] for c in kids], tree.chance[node])
            else:
                values[node] = tree.payoffs[node]
        self.values = values

    def probs(self, tree: GameTree, node: int) -> list[float]:
        best = self.best[node]
        return [1.0 / len(best) if i in best else 0.0 for i in range(len(tree.actions[node]))]


def _mean(vectors: list[tuple[float, ...]], weights: list[float]) -> tuple[float, ...]:
    return tuple(sum(w * v[s] for v, w in zip(vectors, weights)) for s in range(len(vectors[0])))


class ModelSource:
    """The observer behind one model's policies: collects the distinct prompts of the decision
    points (each prompt once), then computes the constrained answer probabilities of all of them
    under each of `samplings` in large batches through the worker's `answer_probabilities`."""

    def __init__(self, name: str, handle, tokenizer, agent: Agent, samplings: list[SamplingParams],
                 max_prompts: int, progress: bool = False):
        if not agent.constrained:
            raise ValueError(f"exact evaluation reads constrained answer probabilities; agent '{agent.name}' "
                             "answers in free text (evaluate it with constrained decoding: --constrained)")
        self.name, self.handle, self.agent, self.samplings = name, handle, agent, samplings
        self.prompts = PromptTokenizer(tokenizer)
        self.max_prompts, self.progress = max_prompts, progress
        self.entries: list[tuple] = []  # (messages, answers, previous entry, previous action index)
        self.index: dict[tuple, int] = {}
        self.node_entry: dict[int, int] = {}  # decision node -> its entry
        self.requests: list[GenerationRequest] | None = None  # built once the walk is done
        self.results: list[list[list[float]]] = []  # [sampling][entry] -> probabilities
        self.seconds = 0.0

    def observe(self, state, seat: int, node: int, previous) -> int:
        messages = self.agent.with_role(state.messages(seat))
        fmt = state.answer_template(seat) or self.agent.answer_format
        answers = tuple(fmt.format(action=a) for a in state.legal_actions(seat))
        before = None
        if previous is not None:  # a rollout extends the seat's last turn when its chat continues it
            prev_node, action = previous
            prev_entry = self.node_entry[prev_node]
            prev_messages = self.entries[prev_entry][0]
            if len(messages) > len(prev_messages) and messages[: len(prev_messages)] == prev_messages:
                before = (prev_entry, action)
        key = (tuple((m["role"], m["content"]) for m in messages), answers, before)
        entry = self.index.get(key)
        if entry is None:
            if len(self.entries) >= self.max_prompts:
                raise ValueError(f"exact evaluation: more than {self.max_prompts:,} distinct prompts for "
                                 f"'{self.name}' (raise max_states to try anyway)")
            entry = self.index[key] = len(self.entries)
            self.entries.append((messages, answers) + (before or (None, None)))
        self.node_entry[node] = entry
        return entry

    def resolve(self, tree: GameTree) -> None:
        """Score every distinct prompt with the model's current weights (called again after an
        update, the prompts are kept)."""
        start = time.perf_counter()
        if self.requests is None:
            self.requests = [GenerationRequest(prompt_ids=p, candidates=self.prompts.answer_candidates(list(answers)))
                             for p, (_, answers, _, _) in zip(self._prompt_ids(), self.entries)]
        requests, results = self.requests, [[] for _ in self.samplings]
        for first in range(0, len(requests), REQUESTS_PER_CALL):
            chunk = requests[first : first + REQUESTS_PER_CALL]
            for store, got in zip(results, self.handle.call("answer_probabilities", chunk, self.samplings)):
                store.extend(got)
            if self.progress and len(requests) > REQUESTS_PER_CALL:
                print(f"  exact: {self.name}: {first + len(chunk):,}/{len(requests):,} prompts scored "
                      f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)
        self.results = results
        self.seconds = time.perf_counter() - start

    def _prompt_ids(self) -> list[list[int]]:
        """Each entry's prompt ids as the rollout builds them: a fresh chat tokenized whole, a
        continued one as the previous prompt + the previous answer's ids + the new text."""
        ids: list[list[int] | None] = [None] * len(self.entries)
        fresh = [i for i, e in enumerate(self.entries) if e[2] is None]
        for i, p in zip(fresh, self.prompts.first_many([self.entries[i][0] for i in fresh])):
            ids[i] = p
        # continued chats, in entry order: an entry's previous entry always comes before it
        pending = [i for i, e in enumerate(self.entries) if e[2] is not None]
        while pending:
            ready = [i for i in pending if ids[self.entries[i][2]] is not None]
            items = []
            for i in ready:
                messages, _, prev, action = self.entries[i]
                prev_messages, prev_answers = self.entries[prev][0], self.entries[prev][1]
                answer_ids = self.prompts.answer_candidates([prev_answers[action]])[0]
                items.append((prev_messages, ids[prev], answer_ids, messages))
            for i, p in zip(ready, self.prompts.extend_many(items)):
                ids[i] = p
            pending = [i for i in pending if ids[i] is None]
        return ids  # type: ignore[return-value]

    def probs(self, which: int, node: int) -> list[float]:
        return self.results[which][self.node_entry[node]]


class ModelPolicy(Policy):
    """One sampling setting of a `ModelSource` (e.g. the agent's temperature, or greedy)."""

    def __init__(self, source: ModelSource, which: int, name: str):
        self.source, self.which, self.name = source, which, name

    @property
    def observer(self):
        return self.source

    def probs(self, tree: GameTree, node: int) -> list[float]:
        return self.source.probs(self.which, node)


def model_policies(name: str, handle, tokenizer, agent: Agent, *, max_prompts: int,
                   progress: bool = False) -> tuple[ModelPolicy, ModelPolicy]:
    """The agent at its own sampling settings and greedy (temperature 0), sharing one scoring pass."""
    greedy = replace(agent.sampling, temperature=0.0)
    source = ModelSource(name, handle, tokenizer, agent, [agent.sampling, greedy], max_prompts, progress)
    t = agent.sampling.temperature
    return (ModelPolicy(source, 0, f"{name} (T={t:g})" if t > 0 else f"{name} (greedy)"),
            ModelPolicy(source, 1, f"{name} (greedy)"))


def checkpoint_policies(loaded, role_prompt: str = "", temperature: float | None = None, *,
                        max_prompts: int, progress: bool = False) -> tuple[ModelPolicy, ModelPolicy]:
    """A loaded checkpoint (`mas.evaluation.loading.LoadedPolicy`) at the sampling settings it was
    trained with (or `temperature`), and greedy. Named by its folder and the one above
    (`step-20/main`), so two checkpoints of one run can face each other."""
    from mas.evaluation.loading import run_config_sampling

    trained = run_config_sampling(loaded.path)
    sampling = SamplingParams(temperature=float(temperature if temperature else trained.get("temperature", 1.0)),
                              top_p=float(trained.get("top_p", 1.0)), top_k=int(trained.get("top_k", 0)),
                              max_new_tokens=loaded.agent.sampling.max_new_tokens)
    agent = replace(loaded.agent, sampling=sampling, role_prompt=role_prompt)
    name = f"{loaded.path.parent.name}/{loaded.path.name}"
    return model_policies(name, loaded.handle, loaded.tokenizer, agent, max_prompts=max_prompts, progress=progress)
