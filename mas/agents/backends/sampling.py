"""Choosing tokens: inverse-CDF sampling, and constrained answers as tensors (which tokens each row
may take next)."""
from __future__ import annotations

import math

import torch

from mas.agents.backends.base import GenerationRequest


def sample_tokens(logp: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One token per row of log-probs `[N, V]` by inverse-CDF sampling: one uniform draw per row
    from the CPU `generator` (reproducible on any device), far cheaper than torch.multinomial."""
    probs = logp.exp().double()
    cdf = probs.cumsum(-1)
    draw = torch.rand((logp.shape[0], 1), generator=generator, dtype=torch.float64).to(cdf.device)
    chosen = torch.searchsorted(cdf, draw * cdf[:, -1:], right=True).squeeze(-1).clamp_max(logp.shape[-1] - 1)
    # a draw rounded up to the total lands past the last token with mass: take that token instead
    unlikely = probs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1) == 0
    if unlikely.any():
        last = logp.shape[-1] - 1 - (probs > 0).flip(-1).int().argmax(-1)
        chosen = torch.where(unlikely, last, chosen)
    return chosen


class Candidates:
    """The answers constrained rows may give, as tensors: which tokens may come next is one
    gather over the candidates still consistent with what each row has sampled."""

    def __init__(self, requests: list[GenerationRequest], eos_id: int):
        lists = [[c for c in (r.candidates or []) if c] for r in requests]
        width = max([1, *map(len, lists)])
        depth = max([1, *(len(c) for cs in lists for c in cs)])
        padded = [[c + [-1] * (depth - len(c)) for c in cs] + [[-1] * depth] * (width - len(cs)) for cs in lists]
        self.tokens = torch.tensor(padded, dtype=torch.long).reshape(len(requests), width, depth)
        self.rows = torch.tensor([r.candidates is not None for r in requests])  # constrained rows
        self.alive = self.tokens[:, :, 0] >= 0  # candidates consistent with the tokens so far
        self.eos_id = eos_id

    def allowed(self, step: int, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, token) pairs allowed now for the active constrained rows, sorted; a row whose
        candidates are all exhausted may only end."""
        nxt = self.tokens[:, :, step] if step < self.tokens.shape[2] else torch.full(self.alive.shape, -1)
        ok = self.alive & (nxt >= 0) & (active & self.rows).unsqueeze(-1)
        rows, cand = ok.nonzero(as_tuple=True)
        tokens = nxt[rows, cand]
        stuck = (active & self.rows & ~ok.any(-1)).nonzero(as_tuple=True)[0]
        if len(stuck):
            rows, tokens = torch.cat([rows, stuck]), torch.cat([tokens, torch.full_like(stuck, self.eos_id)])
        span = int(tokens.max()) + 1 if len(tokens) else 1
        pairs = torch.unique(rows * span + tokens)  # sorted by row, then token
        return pairs // span, pairs % span

    def advance(self, step: int, chosen: torch.Tensor) -> None:
        if step < self.tokens.shape[2]:
            self.alive &= self.tokens[:, :, step] == chosen.unsqueeze(-1)
        else:
            self.alive[:] = False


def allowed_per_row(steps, requests, lengths) -> list[list[list[int]] | None]:
    """Per constrained row, the allowed ids at each of its sampled tokens (None: free text)."""
    out: list[list[list[int]] | None] = [
        [[] for _ in range(k)] if r.candidates is not None else None for r, k in zip(requests, lengths)
    ]
    for step, (rows, ids) in enumerate(steps):
        for row, token in zip(rows, ids):
            out[row][step].append(token)
    return out


def branch_points(candidates: list[list[int]]) -> dict[tuple[int, ...], list[int]]:
    """The prefixes at which constrained decoding chooses among several tokens, each with its
    allowed next tokens in ascending order (as the decoder ranks them). At every other prefix the
    next token is forced and costs no model call."""
    children: dict[tuple[int, ...], set[int]] = {}
    for cand in candidates:
        for t in range(len(cand)):
            children.setdefault(tuple(cand[:t]), set()).add(cand[t])
    return {prefix: sorted(tokens) for prefix, tokens in children.items() if len(tokens) > 1}


def answer_distribution(candidates: list[list[int]], branches: dict[tuple[int, ...], list[int]],
                        logp: dict[tuple[int, ...], torch.Tensor], greedy: bool) -> list[float]:
    """Each candidate's probability under token-by-token constrained decoding, from the processed
    log-probs `logp[prefix]` over `branches[prefix]` at each branch point. Greedy decoding follows
    the first highest log-prob at each branch (the decoder's argmax), so one candidate gets 1."""
    if greedy:
        prefix: tuple[int, ...] = ()
        matching = list(range(len(candidates)))
        while len(matching) > 1:
            if prefix in branches:
                prefix += (branches[prefix][int(logp[prefix].argmax())],)
            else:  # a forced token
                prefix += (candidates[matching[0]][len(prefix)],)
            matching = [i for i in matching if tuple(candidates[i][: len(prefix)]) == prefix]
        return [1.0 if i in matching else 0.0 for i in range(len(candidates))]
    out = []
    for cand in candidates:
        total = 0.0
        for t, token in enumerate(cand):
            prefix = tuple(cand[:t])
            if prefix in branches:
                total += float(logp[prefix][branches[prefix].index(token)])
        out.append(math.exp(total))
    return out
