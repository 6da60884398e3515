"""Text the tiny tokenizer is trained on: what the registered games render in seeded random play,
plus digits and plain words, so that prompts and answers of every built-in task tokenize compactly."""
from __future__ import annotations

import numpy as np

CORPUS_ENVS = ("tic_tac_toe", "kuhn_poker")
_GAMES_PER_ENV = 300

_BASE_TEXT = [
    " ".join(str(i) for i in range(1000)),
    "The answer is <answer></answer> <think></think> yes no approve reject Question: Answer:",
    "+ - * / = ( ) , . : ; ! ? # $ % & ' \" [ ] { } \\boxed{}",
    # chat roles, as the template writes them right after a special token
    "\n".join(["system", "user", "assistant"] * 20),
]


def _play_random_games(env_spec, games: int, seed: int) -> list[str]:
    from mas.games import make  # games sit below agents; imported lazily to keep module load light

    env = make(env_spec)
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    for game in range(games):
        state = env.reset(seed + game)
        while not state.is_terminal():
            for seat in state.current_seats():
                legal = state.legal_actions(seat)
                action = legal[rng.integers(len(legal))] if legal else "ok"
                answer = f"<answer>{action}</answer>"
                texts.extend(m["content"] for m in state.messages(seat)[-1:])
                texts.append(answer)
                state.apply(seat, answer)
                if state.is_terminal():
                    break
        for seat in range(env.num_seats):
            texts.extend(m["content"] for m in state.messages(seat)[:1])
    return texts


def tiny_corpus(seed: int = 0) -> list[str]:
    texts = list(_BASE_TEXT)
    for i, env_id in enumerate(CORPUS_ENVS):
        texts.extend(_play_random_games(env_id, _GAMES_PER_ENV, seed + 1000 * i))
        texts.extend(_play_random_games({"name": env_id, "prompt": "compact"}, 20, seed + 1000 * i + 500))
    return texts
