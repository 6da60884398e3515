"""`mas sft`: supervised fine-tuning on prompt/response pairs, to warm up attackers from seed
attacks or teach a tiny model a task's format before RL.

A JSONL line is `{"prompt": "text" | [chat messages], "response": "text"}` (optionally `"system"`).
The prompt goes through the model's chat template exactly as the rollout builds prompts, the response
is followed by end-of-sequence (`mas.training.sft` trains on them)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from mas.agents.chat import PromptTokenizer
from mas.agents.models import load_model, load_tokenizer, resolve
from mas.evaluation.loading import policy_folder
from mas.training.sft import SFTSettings, sft


def read_pairs(path: str) -> list[dict]:
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{path}:{n}: not a JSON object") from None
            if not isinstance(row, dict) or "prompt" not in row or "response" not in row:
                raise ValueError(f"{path}:{n}: each line needs 'prompt' and 'response'")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no prompt/response pairs")
    return rows


def encode_pairs(tokenizer, rows: list[dict]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, response ids + end-of-sequence) per pair."""
    prompts = PromptTokenizer(tokenizer)
    out = []
    for row in rows:
        messages = row["prompt"] if isinstance(row["prompt"], list) else [{"role": "user", "content": row["prompt"]}]
        if row.get("system"):
            messages = [{"role": "system", "content": row["system"]}, *messages]
        out.append((prompts.first(messages), prompts.encode_text(row["response"]) + [tokenizer.eos_token_id]))
    return out


def run_sft(args) -> int:
    path = str(resolve(args.policy)) if args.policy.startswith("tiny-") else str(policy_folder(args.policy))
    rows = read_pairs(args.data)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(path)
    model = load_model(path)
    pairs = encode_pairs(tokenizer, rows)
    settings = SFTSettings(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
    losses = sft(model, pairs, settings, tokenizer.pad_token_id)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    print(f"sft: {len(pairs)} pairs, loss per epoch " + " ".join(f"{x:.4f}" for x in losses) + f"; saved to {out}")
    return 0
