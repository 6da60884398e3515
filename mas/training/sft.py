"""Supervised fine-tuning on (prompt ids, response ids) pairs, the training step behind `mas sft`
(mas/sft_command.py reads and tokenizes the pairs): the loss is the mean cross-entropy over
response tokens only."""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch


@dataclass
class SFTSettings:
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 16
    seed: int = 0
    grad_clip: float = 1.0


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
