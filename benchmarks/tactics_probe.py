"""How fast does a tiny model learn one tic-tac-toe tactic, by supervised labels and by RL?

Positions with exactly one winning move are drawn from seeded random play and rendered as the
quickstart renders them (compact prompt, fresh chat per turn). `--mode sl` trains with cross-entropy
on the winning move; `--mode rl` samples a move under constrained decoding, rewards 1 for the win,
and updates with the project's own PPO trainer (normalized rewards as advantages). Both report the
greedy accuracy on 200 held-out positions. This measures the learning speed that bounds the
quickstart: python benchmarks/tactics_probe.py --mode rl --iterations 100
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mas.agents.backends.base import GenerationRequest, SamplingParams
from mas.agents.backends.hf import HFBackend
from mas.agents.chat import PromptTokenizer
from mas.agents.models import build_tiny, load_model, load_tokenizer
from mas.games import make
from mas.records import Turn
from mas.training.losses import LossConfig
from mas.training.strategies import OptimizerSettings, TorchStrategy
from mas.training.trainer import PolicyTrainer, UpdateSettings


def win_in_one_positions(env, seed: int, count: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < count:
        state = env.reset(int(rng.integers(1 << 30)))
        for _ in range(int(rng.integers(2, 7))):
            seat = state.current_seats()[0]
            legal = state.legal_actions(seat)
            state.apply(seat, legal[rng.integers(len(legal))])
            if state.is_terminal():
                break
        if state.is_terminal():
            continue
        seat, native = state.current_seats()[0], state.native()
        wins = []
        for action in native.legal_actions():
            child = native.clone()
            child.apply_action(action)
            if child.is_terminal() and child.returns()[seat] > 0:
                wins.append(state.action_text(action))
        if len(wins) == 1:
            found.append((state, seat, wins[0]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["sl", "rl"], default="rl")
    parser.add_argument("--model", default="tiny-xs")
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    path = str(build_tiny(args.model))
    tokenizer, model = load_tokenizer(path), load_model(path)
    prompts, backend = PromptTokenizer(tokenizer), HFBackend(model, tokenizer)
    env = make({"name": "tic_tac_toe", "prompt": "compact", "history": False})

    def requests(items):
        return [GenerationRequest(prompts.first(s.messages(seat)),
                                  prompts.answer_candidates([f"<answer>{a}</answer>" for a in s.legal_actions(seat)]))
                for s, seat, _ in items]

    def correct(gens, items):
        return torch.tensor([g.text == f"<answer>{w}</answer>" for g, (_, _, w) in zip(gens, items)], dtype=torch.float32)

    held_out = win_in_one_positions(env, 12345, 200)
    held_out_requests = requests(held_out)
    chance = np.mean([1 / len(s.legal_actions(seat)) for s, seat, _ in held_out])
    trainer = PolicyTrainer(model, TorchStrategy(model, OptimizerSettings(lr=args.lr)), LossConfig(),
                            UpdateSettings(mini_batches=2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    print(f"mode {args.mode}, model {args.model}, chance accuracy {chance:.3f}")
    start = time.perf_counter()
    for it in range(args.iterations):
        items = win_in_one_positions(env, it, args.batch)
        reqs = requests(items)
        if args.mode == "rl":
            gens = backend.generate(reqs, SamplingParams(temperature=1.0, max_new_tokens=8), seed=it)
            reward = correct(gens, items)
            adv = ((reward - reward.mean()) / (reward.std() + 1e-6)).tolist()
            turns = [Turn(episode_id=i, group_id=0, env="probe", agent="a", policy="p", seat=0, turn=0, step=0,
                          prompt_ids=r.prompt_ids, response_ids=g.token_ids, logprobs=g.logprobs,
                          temperature=1.0, allowed_ids=g.allowed_ids) for i, (r, g) in enumerate(zip(reqs, gens))]
            trainer.update(turns, adv, seed=it)
        else:  # teacher forcing on the one winning answer, log-probs renormalized over the legal answers
            targets = [prompts.answer_candidates([f"<answer>{w}</answer>"])[0] for _, _, w in items]
            turns = [Turn(episode_id=i, group_id=0, env="probe", agent="a", policy="p", seat=0, turn=0, step=0,
                          prompt_ids=r.prompt_ids, response_ids=t, logprobs=[0.0] * len(t), temperature=1.0,
                          allowed_ids=[backend_allowed(r, t, k) for k in range(len(t))])
                     for i, (r, t) in enumerate(zip(reqs, targets))]
            from mas.training.packing import pack_turns
            from mas.training.trainer import _target_logprobs

            model.train()
            logp, _ = _target_logprobs(model, pack_turns(turns), torch.device("cpu"))
            loss = -logp.sum() / len(turns)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if (it + 1) % 10 == 0:
            gens = backend.generate(held_out_requests, SamplingParams(temperature=0.0, max_new_tokens=8), seed=0)
            print(f"iteration {it + 1:4d}  samples {(it + 1) * args.batch:6d}  held-out greedy accuracy "
                  f"{float(correct(gens, held_out).mean()):.3f}  ({time.perf_counter() - start:.0f} s)", flush=True)


def backend_allowed(request: GenerationRequest, target: list[int], k: int) -> list[int]:
    """The tokens constrained decoding allows after the first k tokens of `target`."""
    return sorted({c[k] for c in request.candidates if len(c) > k and c[:k] == target[:k]})


if __name__ == "__main__":
    main()
