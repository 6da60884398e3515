"""Supervised fine-tuning on prompt/response pairs (`mas sft`): warm up attackers from seed attacks,
or teach a tiny model a task's format before RL.

A JSONL line is `{"prompt": "text" | [chat messages], "response": "text"}` (optionally `"system"`).
The prompt goes through the model's chat template exactly as the rollout builds prompts, the response
is followed by end-of-sequence, and the loss is the mean cross-entropy over response tokens only."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from mas.agents.chat import PromptTokenizer


@dataclass
class SFTSettings:
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 16
    seed: int = 0
    grad_clip: float = 1.0


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


def sft(model, pairs: list[tuple[list[int], list[int]]], settings: SFTSettings, pad_id: int,
        progress: bool = True) -> list[float]:
    """Train `model` in place; returns the mean loss of each epoch."""
    from tqdm import tqdm

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.lr)
    rng = random.Random(settings.seed)
    model.train()
    losses = []
    for epoch in range(settings.epochs):
        order = list(range(len(pairs)))
        rng.shuffle(order)
        total, count = 0.0, 0
        batches = [order[i:i + settings.batch_size] for i in range(0, len(order), settings.batch_size)]
        for batch in tqdm(batches, desc=f"sft epoch {epoch + 1}/{settings.epochs}", disable=None if progress else True,
                          leave=False):  # None: no bar when the output is not a terminal
            ids, labels, mask = _collate([pairs[i] for i in batch], pad_id)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                                     ignore_index=-100)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        losses.append(total / count)
    model.eval()
    return losses


def _collate(pairs, pad_id):
    width = max(len(p) + len(r) for p, r in pairs)
    ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(pairs), width), -100, dtype=torch.long)
    mask = torch.zeros((len(pairs), width), dtype=torch.long)
    for b, (prompt, response) in enumerate(pairs):
        seq = prompt + response
        ids[b, : len(seq)] = torch.tensor(seq)
        labels[b, len(prompt): len(seq)] = torch.tensor(response)  # loss on the response only
        mask[b, : len(seq)] = 1
    return ids, labels, mask


def run_sft(args) -> int:
    from mas.agents.models import load_model, load_tokenizer, resolve
    from mas.evaluation.loading import policy_folder

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
