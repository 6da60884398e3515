"""Policy losses over flat per-token tensors (docs/algorithms.md, "Policy loss").

The trainer packs sequences, so the response tokens of many rows (turns) are concatenated; `row_index`
says which row each token belongs to. Everything here is a pure function of tensors.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
RATIO_MODES = ("token", "sequence")
# Clip ranges when the config leaves them unset: PPO's per-token ratio, GSPO's sequence ratio
# (arXiv:2507.18071 uses a far narrower range because a sequence ratio moves little).
DEFAULT_CLIP = {"token": (0.2, 0.2), "sequence": (3e-4, 4e-4)}
KL_ESTIMATORS = ("k1", "k2", "k3")
KL_DELTA_CLAMP = 10.0


@dataclass
class LossConfig:
    clip_low: float | None = None  # None: the default of `ratio` (DEFAULT_CLIP)
    clip_high: float | None = None
    dual_clip: float | None = None  # c > 1; for A < 0: loss = min(loss, -c * A)
    kl_coef: float = 0.0
    kl_estimator: str = "k3"  # k1 | k2 | k3 over delta = logp_ref - logp, clamped to +-10
    entropy_coef: float = 0.0  # bonus on the entropy of each token's sampling distribution
    agg: str = "token-mean"  # token-mean | seq-mean-token-mean | seq-mean-token-sum-norm
    max_new_tokens: int | None = None  # the divisor of seq-mean-token-sum-norm
    ratio: str = "token"  # token (PPO) | sequence (GSPO: one ratio per turn)

    def __post_init__(self) -> None:
        if self.ratio in DEFAULT_CLIP:
            low, high = DEFAULT_CLIP[self.ratio]
            self.clip_low = low if self.clip_low is None else self.clip_low
            self.clip_high = high if self.clip_high is None else self.clip_high
        self.validate()

    def validate(self) -> None:
        """One-line ValueError for a value a user can get wrong."""
        if self.ratio not in RATIO_MODES:
            raise ValueError(f"loss.ratio must be one of {', '.join(RATIO_MODES)}, got {self.ratio!r}")
        if not 0.0 <= self.clip_low < 1.0:
            raise ValueError(f"loss.clip_low must be in [0, 1), got {self.clip_low}")
        if not self.clip_high >= 0.0:
            raise ValueError(f"loss.clip_high must be >= 0, got {self.clip_high}")
        if self.dual_clip is not None and not self.dual_clip > 1.0:
            raise ValueError(f"loss.dual_clip must be > 1 (or null for off), got {self.dual_clip}")
        if not self.kl_coef >= 0.0:
            raise ValueError(f"loss.kl_coef must be >= 0, got {self.kl_coef}")
        if not self.entropy_coef >= 0.0:
            raise ValueError(f"loss.entropy_coef must be >= 0, got {self.entropy_coef}")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(
                f"loss.kl_estimator must be one of {', '.join(KL_ESTIMATORS)}, got {self.kl_estimator!r}"
            )
        if self.agg not in AGG_MODES:
            raise ValueError(f"loss.agg must be one of {', '.join(AGG_MODES)}, got {self.agg!r}")
        if self.max_new_tokens is not None and not (
            isinstance(self.max_new_tokens, int) and self.max_new_tokens > 0
        ):
            raise ValueError(f"loss.max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        if self.agg == "seq-mean-token-sum-norm" and self.max_new_tokens is None:
            raise ValueError("loss.agg seq-mean-token-sum-norm needs loss.max_new_tokens")


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(pi_theta || pi_ref) from samples of pi_theta (J. Schulman,
    "Approximating KL divergence", 2020): with delta = log pi_ref - log pi_theta clamped to +-10,
    k1 = -delta, k2 = delta^2 / 2, k3 = exp(delta) - delta - 1 (unbiased and >= 0)."""
    delta = (ref_logp - logp).clamp(-KL_DELTA_CLAMP, KL_DELTA_CLAMP)
    if estimator == "k1":
        return -delta
    if estimator == "k2":
        return 0.5 * delta.square()
    if estimator == "k3":
        return torch.expm1(delta) - delta
    raise ValueError(f"kl_estimator must be one of {', '.join(KL_ESTIMATORS)}, got {estimator!r}")


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    row_index: torch.Tensor,
    cfg: LossConfig,
    *,
    ref_logp: torch.Tensor | None = None,
    token_normalizer: float | None = None,
    row_normalizer: float | None = None,
    mix: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped policy-gradient loss with optional dual clip and KL penalty, aggregated.

    Per response token (PPO-clip, Schulman et al. 2017, arXiv:1707.06347):
        rho = exp(log pi_theta - log pi_old)
    or, with `ratio: sequence` (GSPO, Zheng et al. 2025, arXiv:2507.18071), one ratio per row (turn)
    on each of its tokens: rho = exp(mean over the row's tokens of (log pi_theta - log pi_old)), the
    gradient flowing through every token of the mean;
        l   = -min(rho * A, clip(rho, 1 - clip_low, 1 + clip_high) * A)
    Dual clip (Ye et al. 2020, arXiv:1912.09729), c > 1: for A < 0, l = min(l, -c * A).
    KL to a frozen reference: l += kl_coef * k(delta), k in {k1, k2, k3} (see `kl_penalty`).
    Entropy bonus: l -= entropy_coef * H, H the entropy of the token's sampling distribution (after
    the allowed-token mask, temperature and truncation; 0 where a constrained token is forced).
    A blend of advantages (COPO, docs/algorithms.md, `copo`): `advantages` [n, k] and `mix` [n, k] give
    l = sum_j mix_j * l_clip(A_j), each term with the same ratio and clips. The KL and entropy terms
    are weighted by sum_j mix_j (1 for a blend; the number of copies when identical sequences are
    trained as one, each copy a column), and so are the metrics.

    Aggregation (`cfg.agg`; a sequence is one row/turn):
    - token-mean: sum_tokens l / token_normalizer (default: the number of tokens here). Pass the
      token count of the whole optimizer step so that micro-batch losses add up to its token mean.
    - seq-mean-token-mean: sum_rows (mean of l over the row's tokens) / row_normalizer.
    - seq-mean-token-sum-norm (Dr. GRPO, arXiv:2503.20783): sum_rows (sum of l over the row's tokens
      / max_new_tokens) / row_normalizer.
    row_normalizer defaults to the number of distinct rows in `row_index` (rows with tokens here).

    Inputs are 1-D over the tokens of this micro-batch: `logp` (differentiable), `old_logp`,
    `ref_logp`, `advantages` (the row's advantage repeated on each of its tokens), `row_index`
    (long, the row of each token) and `entropy` (differentiable, needed when entropy_coef > 0).
    Returns (loss, metrics); metrics are python floats averaged over the tokens here whatever `agg`
    is: pg_loss, clip_fraction, ratio_mean, and kl when `ref_logp` is given (plus
    dual_clip_fraction with dual clip).
    """
    cfg.validate()
    n = logp.shape[0]
    for label, t in (("old_logp", old_logp), ("advantages", advantages[:, 0] if mix is not None else advantages),
                     ("row_index", row_index)):
        if t.shape != logp.shape:
            raise ValueError(f"policy_loss: {label} has shape {tuple(t.shape)}, logp {tuple(logp.shape)}")
    if mix is not None and mix.shape != advantages.shape:
        raise ValueError(f"policy_loss: mix has shape {tuple(mix.shape)}, advantages {tuple(advantages.shape)}")
    if ref_logp is not None and ref_logp.shape != logp.shape:
        raise ValueError(f"policy_loss: ref_logp has shape {tuple(ref_logp.shape)}, logp {tuple(logp.shape)}")
    if cfg.kl_coef > 0 and ref_logp is None:
        raise ValueError("policy_loss: kl_coef > 0 needs ref_logp")
    if cfg.entropy_coef > 0 and (entropy is None or entropy.shape != logp.shape):
        raise ValueError("policy_loss: entropy_coef > 0 needs a per-token entropy shaped like logp")

    # Loss maths in float32 at least, whatever the model's dtype.
    dtype = torch.promote_types(logp.dtype, torch.float32)
    logp = logp.to(dtype)
    old_logp = old_logp.to(dtype).detach()
    adv = advantages.to(dtype).detach()

    ratio = _ratio(logp - old_logp, row_index, cfg.ratio)
    if mix is not None:  # one column per blended advantage
        ratio = ratio.unsqueeze(-1)
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - cfg.clip_low, 1.0 + cfg.clip_high)
    pg = torch.maximum(unclipped, clipped)  # = -min(rho A, clip(rho) A)
    dual_mask = None
    if cfg.dual_clip is not None:
        dual_mask = (adv < 0) & (pg > -cfg.dual_clip * adv)
        pg = torch.where(adv < 0, torch.minimum(pg, -cfg.dual_clip * adv), pg)
    weight = torch.ones_like(pg) if mix is None else mix.to(dtype).detach()
    copies = torch.ones_like(logp) if mix is None else weight.sum(-1)
    if mix is not None:
        pg = (weight * pg).sum(-1)
        ratio = ratio.squeeze(-1)

    per_token = pg
    kl = None
    if ref_logp is not None:
        kl = kl_penalty(logp, ref_logp.to(dtype).detach(), cfg.kl_estimator)
        if cfg.kl_coef > 0:
            per_token = per_token + cfg.kl_coef * copies * kl
    if cfg.entropy_coef > 0:
        per_token = per_token - cfg.entropy_coef * copies * entropy.to(dtype)

    loss = _aggregate(per_token, row_index, cfg, token_normalizer, row_normalizer)

    with torch.no_grad():
        denom = max(float(copies.sum()), 1.0)
        metrics = {
            "pg_loss": float(pg.sum() / denom),
            "clip_fraction": float((weight * (clipped > unclipped)).sum() / denom),
            "ratio_mean": float((copies * ratio).sum() / denom),
        }
        if dual_mask is not None:
            metrics["dual_clip_fraction"] = float((weight * dual_mask).sum() / denom)
        if kl is not None:
            metrics["kl"] = float((copies * kl).sum() / denom)
    return loss, metrics


def _ratio(log_ratio: torch.Tensor, row_index: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "token":
        return torch.exp(log_ratio)
    rows, local = torch.unique(row_index, return_inverse=True)
    total = log_ratio.new_zeros(rows.shape[0]).index_add(0, local, log_ratio)
    count = log_ratio.new_zeros(rows.shape[0]).index_add(0, local, torch.ones_like(log_ratio))
    return torch.exp(total / count)[local]


def _aggregate(
    per_token: torch.Tensor,
    row_index: torch.Tensor,
    cfg: LossConfig,
    token_normalizer: float | None,
    row_normalizer: float | None,
) -> torch.Tensor:
    if cfg.agg == "token-mean":
        denom = per_token.shape[0] if token_normalizer is None else token_normalizer
        return per_token.sum() / max(denom, 1)
    rows, local = torch.unique(row_index, return_inverse=True)
    num_rows = rows.shape[0]
    row_sum = per_token.new_zeros(num_rows).index_add(0, local, per_token)
    if cfg.agg == "seq-mean-token-mean":
        count = per_token.new_zeros(num_rows).index_add(0, local, torch.ones_like(per_token))
        row_value = row_sum / count
    else:  # seq-mean-token-sum-norm
        row_value = row_sum / cfg.max_new_tokens
    denom = num_rows if row_normalizer is None else row_normalizer
    return row_value.sum() / max(denom, 1)
