"""Rollout throughput: the engine beside two baselines on the same model, in this process.

- engine: `RolloutEngine.play` on N concurrent games (one batched generate call per round);
- naive: the same games one at a time, one `generate` call per move, through the same backend;
- naive with transformers: the same, as a first script would write it, with one
  `model.generate` per move and none of the backend's savings;
- floor: every batch the engine sent, replayed through the model alone with the same prompts and
  the same number of decode steps (prefill, then one cached forward per generated token, fed the
  tokens the engine sampled): model time with no env, sampling, orchestration or Ray."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from mas.agents.backends.base import GenerationRequest
from mas.agents.backends.hf import HFBackend
from mas.agents.chat import PromptTokenizer
from mas.bench.workloads import Setup
from mas.orchestration.handles import LocalHandle
from mas.orchestration.rollout import EpisodeSpec, RolloutEngine, answer_candidates
from mas.seeding import stable_seed


@dataclass
class Throughput:
    games: int
    seconds: float
    generated_tokens: int
    generate_calls: int
    model_seconds: float | None = None  # inside model forwards (engine runs only)

    @property
    def games_per_s(self) -> float:
        return self.games / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.seconds

    def as_dict(self) -> dict:
        return {**asdict(self), "games_per_s": self.games_per_s, "tokens_per_s": self.tokens_per_s}


def median_run(runs: list[Throughput]) -> Throughput:
    """The run of median wall time."""
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


class RecordingWorker:
    """Passes generate calls to a worker and keeps each call's prompts and sampled tokens."""

    def __init__(self, worker):
        self.worker = worker
        self.calls: list[tuple[list, list]] = []  # (requests, generations) per call

    def generate(self, requests, sampling, seed):
        out = self.worker.generate(requests, sampling, seed)
        self.calls.append((requests, out))
        return out


def game_specs(setup: Setup, games: int, seed: int, seats=None) -> list[EpisodeSpec]:
    players = seats or setup.seats
    return [EpisodeSpec(episode_id=i, group_id=i, seed=stable_seed(seed, i), players=list(players))
            for i in range(games)]


def run_engine(setup: Setup, games: int, seed: int = 0) -> tuple[Throughput, RecordingWorker]:
    """The engine on `games` games; the throughput's `model_seconds` is the time its backend
    spent inside model forwards."""
    recorder = RecordingWorker(setup.worker)
    policy = setup.agent.policy
    engine = RolloutEngine(setup.env, {policy: LocalHandle(recorder)}, {policy: setup.worker.tokenizer})
    backend = setup.worker.backend
    backend.kept.clear()  # every run starts cold
    backend.model_seconds, backend.count_model_time = 0.0, True
    start = time.perf_counter()
    try:
        _, stats = engine.play(game_specs(setup, games, seed), seed)
    finally:
        backend.count_model_time = False
    seconds = time.perf_counter() - start
    return Throughput(games, seconds, stats.generated_tokens, stats.generate_calls, backend.model_seconds), recorder


def run_naive(setup: Setup, games: int, seed: int = 0) -> Throughput:
    """One game at a time, one generate call per move: what a first script would do."""

    def move(agent, ids, candidates, call_seed):
        gen = setup.worker.generate([GenerationRequest(ids, candidates)], agent.sampling, call_seed)[0]
        return gen.token_ids, gen.text, gen.finished

    return _one_game_at_a_time(setup, games, seed, move)


def run_naive_transformers(setup: Setup, games: int, seed: int = 0) -> Throughput:
    """One game at a time, one transformers `model.generate` per move: what a first script with
    transformers would do. The same prompts; the same answers allowed (`prefix_allowed_tokens_fn`
    over the legal answers' tokens), sampled at the agent's settings; the chosen tokens' log-probs
    returned, as training needs them. None of the backend's savings."""
    model, tokenizer = setup.worker.backend.model, setup.worker.tokenizer
    model.eval()

    def move(agent, ids, candidates, call_seed):
        torch.manual_seed(call_seed)
        new, finished = _transformers_move(model, tokenizer, ids, candidates, agent.sampling)
        return new, tokenizer.decode(new, skip_special_tokens=True), finished

    return _one_game_at_a_time(setup, games, seed, move)


def _one_game_at_a_time(setup: Setup, games: int, seed: int, move) -> Throughput:
    """The naive loops' games: each move is `move(agent, prompt ids, candidates, seed)` ->
    (generated ids, text, finished)."""
    prompts = PromptTokenizer(setup.worker.tokenizer)
    tokens = calls = 0
    start = time.perf_counter()
    for spec in game_specs(setup, games, seed):
        state = setup.env.reset(spec.seed)
        while not state.is_terminal():
            for seat in state.current_seats():
                if state.is_terminal():
                    break
                agent = spec.players[seat]
                ids = prompts.first(agent.with_role(state.messages(seat)))
                candidates = answer_candidates(prompts, state, seat, agent)
                new, text, finished = move(agent, ids, candidates, stable_seed(seed, spec.seed, calls))
                calls += 1
                tokens += len(new)
                if finished:
                    state.apply(seat, text)
                else:
                    state.apply_invalid(seat, "cut off at max_new_tokens")
    return Throughput(games, time.perf_counter() - start, tokens, calls)


@torch.inference_mode()
def _transformers_move(model, tokenizer, ids: list[int], candidates, sampling) -> tuple[list[int], bool]:
    eos = tokenizer.eos_token_id

    def allowed(_, sequence: torch.Tensor) -> list[int]:
        done = sequence[len(ids):].tolist()
        nxt = [c[len(done)] for c in candidates if len(c) > len(done) and c[: len(done)] == done]
        return sorted(set(nxt)) or [eos]

    out = model.generate(
        torch.tensor([ids]), attention_mask=torch.ones((1, len(ids)), dtype=torch.long),
        do_sample=sampling.temperature > 0, temperature=sampling.temperature or None, top_k=sampling.top_k,
        top_p=sampling.top_p, max_new_tokens=sampling.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=eos, prefix_allowed_tokens_fn=allowed if candidates is not None else None,
        output_scores=True, return_dict_in_generate=True,
    )
    model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)  # the log-probs
    new = out.sequences[0, len(ids):].tolist()
    finished = eos in new
    return (new[: new.index(eos) + 1] if finished else new), finished


@torch.no_grad()
def replay_floor(backend: HFBackend, calls) -> float:
    """Seconds to generate the recorded sequences with the model alone, plainly: per batch (in
    the backend's length-sorted chunks) one left-padded prefill of the prompts, then one cached
    forward per generated token but the last, fed the tokens the engine sampled."""
    backend.model.eval()
    start = time.perf_counter()
    for requests, generations in calls:
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_ids))
        for begin in range(0, len(order), backend.max_batch_size):
            chunk = order[begin : begin + backend.max_batch_size]
            outputs = [generations[i].token_ids for i in chunk]
            state = backend.prefill_plain([requests[i].prompt_ids for i in chunk])
            steps = max(len(o) for o in outputs)
            feed = torch.full((len(chunk), steps), backend.pad_id, dtype=torch.long)
            for row, tokens in enumerate(outputs):
                feed[row, : len(tokens)] = torch.tensor(tokens)
            for step in range(steps - 1):  # the last sampled token is never fed back
                backend.decode_step(state, feed[:, step])
    return time.perf_counter() - start
