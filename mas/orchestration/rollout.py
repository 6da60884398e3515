"""Plays many episodes at once in lockstep rounds. In each round every episode that waits on a seat
played by an LLM agent contributes one request, and each policy receives all of its requests in one
batched `generate` call (split by sampling settings). Bots answer in-process. Seeds derive from the
caller's seeds, so a rollout is reproducible (docs/architecture.md, "Determinism")."""
from __future__ import annotations

import copy
import time
from collections import ChainMap, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from mas.agents.agent import Agent
from mas.agents.backends.base import GenerationRequest
from mas.agents.bots import RandomBot
from mas.agents.chat import PromptTokenizer
from mas.orchestration.handles import gather
from mas.records import Episode, Turn
from mas.seeding import EPISODE_RNG_STREAM, stable_seed

_OPENING = RandomBot("opening")
Player = Union[Agent, Any]  # an Agent, or a bot with `name` and `act(state, seat, rng) -> str`


@dataclass
class EpisodeSpec:
    episode_id: int
    group_id: int
    seed: int
    players: list[Player]  # one per seat
    env: Any = None  # the game of this episode (a mixture of games); None: the engine's env
    opening_moves: int = 0  # uniformly random moves played before the players act (not trained on)


@dataclass
class RolloutStats:
    episodes: int = 0
    turns: int = 0
    generated_tokens: int = 0
    generate_calls: int = 0
    rounds: int = 0
    seconds: float = 0.0
    invalid_turns: int = 0
    per_policy_tokens: dict[str, int] = field(default_factory=dict)


@dataclass
class _SeatContext:
    messages: list[dict] = field(default_factory=list)
    prompt_ids: list[int] = field(default_factory=list)
    last_turn: Turn | None = None
    turns: int = 0


@dataclass
class _Live:
    spec: EpisodeSpec
    env: Any
    state: Any
    rng: np.random.Generator
    seats: dict[int, _SeatContext]
    turns: list[Turn]
    steps: int = 0


def answer_candidates(prompts: PromptTokenizer, state, seat: int, agent: Agent) -> list[list[int]] | None:
    """The token sequences a constrained agent may answer with at `seat` (None: free text)."""
    if not agent.constrained:
        return None
    legal = state.legal_actions(seat)
    if not legal:
        return None
    # an env may say how answers are written for a seat (a verifier's <verify>...)
    fmt = state.answer_template(seat) or agent.answer_format
    return prompts.answer_candidates([fmt.format(action=a) for a in legal])


class RolloutEngine:
    """`handles` maps each policy to the handle that serves it: a plain dict, or the run's
    `PolicyWorkers`, read at every call so that restarted workers are found."""

    def __init__(self, env, handles: Mapping[str, Any], tokenizers: dict[str, Any]):
        self.env = env
        self.handles = handles
        self.frozen: dict[str, Any] = {}
        self.prompts = {name: PromptTokenizer(tok) for name, tok in tokenizers.items()}

    def add_policy(self, name: str, handle, tokenizer) -> None:
        """Serve another policy (e.g. a frozen opponent) from now on; kept apart from `handles`,
        which belong to the run's workers."""
        self.frozen[name] = handle
        self.prompts[name] = PromptTokenizer(tokenizer)

    def serving(self, handles: Mapping[str, Any]) -> "RolloutEngine":
        """This engine with the policies in `handles` served by those handles instead (e.g. the
        untrained weights, for a comparison); prompts and frozen opponents are shared."""
        view = copy.copy(self)
        view.handles = ChainMap(dict(handles), self.handles)
        return view

    def play(self, specs: list[EpisodeSpec], seed: int) -> tuple[list[Episode], RolloutStats]:
        start = time.perf_counter()
        stats = RolloutStats()
        live = []
        for s in specs:
            env = s.env or self.env
            live.append(_Live(s, env, env.reset(s.seed), np.random.default_rng(stable_seed(s.seed, EPISODE_RNG_STREAM)),
                              defaultdict(_SeatContext), []))
            self._play_opening(live[-1])
        round_index = 0
        while True:
            waiting: list[tuple[_Live, int, Agent]] = []
            for ep in live:
                self._advance_bots(ep)
                if not ep.state.is_terminal():
                    waiting += [(ep, seat, ep.spec.players[seat]) for seat in ep.state.current_seats()]
            pending: dict[tuple[str, Any], list[tuple[_Live, int, Agent, GenerationRequest]]] = defaultdict(list)
            for (ep, seat, agent), request in zip(waiting, self._requests(waiting)):
                pending[(agent.policy, agent.sampling)].append((ep, seat, agent, request))
            if not pending:
                break
            keys = list(pending)
            futures = [
                (self.handles.get(policy) or self.frozen[policy]).submit(
                    "generate",
                    [item[3] for item in pending[(policy, sampling)]],
                    sampling,
                    stable_seed(seed, round_index, i),
                )
                for i, (policy, sampling) in enumerate(keys)
            ]
            stats.generate_calls += len(futures)
            for key, generations in zip(keys, gather(futures)):
                for (ep, seat, agent, request), gen in zip(pending[key], generations):
                    self._record(ep, seat, agent, request, gen, stats)
            round_index += 1
        stats.rounds = round_index
        episodes = [self._finish(ep) for ep in live]
        stats.episodes = len(episodes)
        stats.seconds = time.perf_counter() - start
        return episodes, stats

    # --- per move -----------------------------------------------------------------------------
    def _play_opening(self, ep: _Live) -> None:
        """The spec's random opening moves, drawn from the episode's rng: a group (one seed) shares
        its opening. They are nobody's turns, so no one learns from them."""
        for _ in range(ep.spec.opening_moves):
            for seat in ep.state.current_seats():
                if ep.state.is_terminal():
                    return
                text = _OPENING.act(ep.state, seat, ep.rng)
                self._apply(ep, seat, lambda: ep.state.apply(seat, text))

    def _advance_bots(self, ep: _Live) -> None:
        """Let bots move until an agent must act or the game ends."""
        while not ep.state.is_terminal():
            seats = ep.state.current_seats()
            bot_seats = [s for s in seats if not isinstance(ep.spec.players[s], Agent)]
            if not bot_seats:
                return
            for seat in bot_seats:
                text = ep.spec.players[seat].act(ep.state, seat, ep.rng)
                self._apply(ep, seat, lambda: ep.state.apply(seat, text))
                if ep.state.is_terminal():
                    return
            if len(bot_seats) < len(seats):
                return

    def _requests(self, waiting: list[tuple[_Live, int, Agent]]) -> list[GenerationRequest]:
        """One request per waiting seat. A seat whose chat extends its previous turn extends that
        turn's ids; the others' prompts are tokenized together, per policy."""
        prompt_ids: list[list[int] | None] = [None] * len(waiting)
        reuse = [0] * len(waiting)
        fresh: dict[str, list[tuple[int, list[dict]]]] = defaultdict(list)
        extended: dict[str, list[tuple[int, tuple]]] = defaultdict(list)
        for i, (ep, seat, agent) in enumerate(waiting):
            ctx = ep.seats[seat]
            messages = agent.with_role(ep.state.messages(seat))
            continues = (
                ctx.last_turn is not None
                and len(messages) > len(ctx.messages)
                and messages[: len(ctx.messages)] == ctx.messages
            )
            if continues:
                extended[agent.policy].append((i, (ctx.messages, ctx.prompt_ids, ctx.last_turn.response_ids, messages)))
            else:  # first turn, or an env that starts a fresh chat every turn (history: false)
                fresh[agent.policy].append((i, messages))
            ctx.messages = messages
        for policy, items in fresh.items():
            for (i, _), ids in zip(items, self.prompts[policy].first_many([m for _, m in items])):
                prompt_ids[i] = ids
        for policy, items in extended.items():
            for (i, (_, before, answer, _)), ids in zip(items, self.prompts[policy].extend_many([x for _, x in items])):
                prompt_ids[i] = ids
                previous = len(before) + len(answer)
                # the backend may resume from the previous turn's cache when the prompt really extends it
                reuse[i] = previous if ids[:previous] == before + answer else 0
        requests = []
        for (ep, seat, agent), ids, r in zip(waiting, prompt_ids, reuse):
            ep.seats[seat].prompt_ids = ids
            candidates = answer_candidates(self.prompts[agent.policy], ep.state, seat, agent)
            # keep the turn's KV cache where the next turn will extend it (envs with history)
            requests.append(GenerationRequest(prompt_ids=ids, candidates=candidates, reuse=r, keep=ep.env.history))
        return requests

    def _record(self, ep: _Live, seat: int, agent: Agent, request, gen, stats: RolloutStats) -> None:
        ctx = ep.seats[seat]
        turn = Turn(
            episode_id=ep.spec.episode_id,
            group_id=ep.spec.group_id,
            env=ep.env.id,
            agent=agent.name,
            policy=agent.policy,
            seat=seat,
            turn=ctx.turns,
            step=ep.steps,
            prompt_ids=request.prompt_ids,
            response_ids=gen.token_ids,
            logprobs=gen.logprobs,
            temperature=agent.sampling.temperature,
            text=gen.text,
            allowed_ids=gen.allowed_ids,
            truncated=not gen.finished,
            agent_group=agent.group or agent.name,
            obs_key=ep.state.obs_key(seat),
        )
        ctx.turns += 1
        ctx.last_turn = turn
        ep.turns.append(turn)
        stats.turns += 1
        stats.generated_tokens += len(gen.token_ids)
        stats.per_policy_tokens[agent.policy] = stats.per_policy_tokens.get(agent.policy, 0) + len(gen.token_ids)
        if ep.state.is_terminal():  # a simultaneous-move partner already ended the game
            return
        # Games treat an answer cut off at max_new_tokens as an invalid move; a workflow reads what
        # was written (a benchmark's final answer may well stand before the cut).
        if gen.finished or ep.state.reads_cut_off_answers:
            result = self._apply(ep, seat, lambda: ep.state.apply(seat, gen.text))
        else:
            result = self._apply(ep, seat, lambda: ep.state.apply_invalid(seat, "cut off at max_new_tokens"))
        turn.valid = result.valid
        stats.invalid_turns += not result.valid

    def _apply(self, ep: _Live, seat: int, move):
        result = move()
        ep.steps += 1
        # A reward caused by any move goes to each rewarded seat's latest turn so far (docs/algorithms.md).
        for rewarded, value in result.rewards.items():
            last = ep.seats[rewarded].last_turn if rewarded in ep.seats else None
            if last is not None and value:
                last.reward += value
                for name, share in result.parts.get(rewarded, {}).items():
                    last.reward_parts[name] = last.reward_parts.get(name, 0.0) + share
        return result

    def _finish(self, ep: _Live) -> Episode:
        state = ep.state
        for turn in ep.turns:
            turn.outcome_key = state.outcome_key(turn.seat)
            turn.task = str(ep.spec.seed)
        return Episode(
            episode_id=ep.spec.episode_id,
            group_id=ep.spec.group_id,
            env=ep.env.id,
            seed=ep.spec.seed,
            turns=ep.turns,
            returns=list(state.returns()),
            outcomes=list(state.outcomes()),
            seat_players=[getattr(p, "name", str(p)) for p in ep.spec.players],
            game_returns=list(state.game_returns()),
            info=state.info(),
        )
