"""Token log-probabilities under the log-prob contract (docs/algorithms.md, "Log-probabilities").

Both the generation backend and the trainer call `processed_logprobs`, so that what was sampled and
what is trained are the same distribution: logits restricted to the allowed tokens (constrained
decoding), divided by the temperature, truncated by top-k / top-p when the config asks, then
log-softmax. A temperature of 0 means greedy decoding; its log-probs are reported at temperature 1."""
from __future__ import annotations

import torch


def processed_logprobs(
    logits: torch.Tensor,
    temperature: float | torch.Tensor = 1.0,
    *,
    top_k: int = 0,
    top_p: float = 1.0,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Log-probs `[N, V]` of the sampling distribution for logits `[N, V]`.

    `temperature` is a float or a per-row tensor `[N]`; `allowed` an optional bool mask `[N, V]`
    (rows with no allowed token at all are left unrestricted)."""
    logits = logits.float()
    if allowed is not None:
        usable = allowed.any(dim=-1, keepdim=True)
        logits = logits.masked_fill(~allowed & usable, float("-inf"))
    if isinstance(temperature, torch.Tensor):
        t = temperature.to(logits).clamp_min(0)
        t = torch.where(t > 0, t, torch.ones_like(t)).unsqueeze(-1)
    else:
        t = temperature if temperature > 0 else 1.0
    logits = logits / t
    if top_k and top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # drop a token when the mass before it already reaches top_p (the first token always stays)
        drop_sorted = (probs.cumsum(-1) - probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return torch.log_softmax(logits, dim=-1)


def entropy_from_logprobs(logp: torch.Tensor) -> torch.Tensor:
    """Entropy per row of a log-prob matrix `[N, V]`; -inf entries contribute 0."""
    p = logp.exp()
    return -(p * torch.where(p > 0, logp, torch.zeros_like(logp))).sum(-1)
