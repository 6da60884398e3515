"""Policy loss against hand-computed values (docs/algorithms.md, "Policy loss")."""
import math

import pytest
import torch

from mas.training.losses import LossConfig, kl_penalty, policy_loss

# Two rows packed: row 0 has 3 tokens with A = +1, row 1 has 2 tokens with A = -2.
# ratios 1.5, 1.0, 0.5 | 1.5, 0.5 ; clip range [0.8, 1.2]
#   tok0: A>0, rho 1.5 -> min(1.5, 1.2) = 1.2   -> loss -1.2 (clipped)
#   tok1: rho 1                                  -> loss -1.0
#   tok2: A>0, rho 0.5 -> min(0.5, 0.8) = 0.5   -> loss -0.5
#   tok3: A<0, rho 1.5 -> min(-3, -2.4) = -3    -> loss  3.0
#   tok4: A<0, rho 0.5 -> min(-1, -1.6) = -1.6  -> loss  1.6 (clipped)
# token sum 1.9; row sums -2.7 and 4.6; row means -0.9 and 2.3
RATIOS = [1.5, 1.0, 0.5, 1.5, 0.5]
ADV = [1.0, 1.0, 1.0, -2.0, -2.0]
ROWS = [0, 0, 0, 1, 1]


def inputs(ratios=RATIOS, adv=ADV, rows=ROWS):
    old = torch.full((len(ratios),), math.log(0.25))
    logp = (old + torch.log(torch.tensor(ratios))).requires_grad_(True)
    return logp, old, torch.tensor(adv), torch.tensor(rows, dtype=torch.long)


def test_token_mean_with_clipping():
    loss, m = policy_loss(*inputs(), LossConfig())
    assert loss.item() == pytest.approx(0.38, abs=1e-6)
    assert m["pg_loss"] == pytest.approx(0.38, abs=1e-6)
    assert m["clip_fraction"] == pytest.approx(0.4)
    assert m["ratio_mean"] == pytest.approx(1.0, abs=1e-6)
    assert "kl" not in m and all(isinstance(v, float) for v in m.values())


def test_token_normalizer_for_the_whole_step():
    loss, _ = policy_loss(*inputs(), LossConfig(), token_normalizer=10)
    assert loss.item() == pytest.approx(0.19, abs=1e-6)


def test_seq_mean_token_mean():
    loss, m = policy_loss(*inputs(), LossConfig(agg="seq-mean-token-mean"))
    assert loss.item() == pytest.approx((-0.9 + 2.3) / 2, abs=1e-6)  # 0.7
    assert m["pg_loss"] == pytest.approx(0.38, abs=1e-6)  # metrics stay token-mean
    loss, _ = policy_loss(*inputs(), LossConfig(agg="seq-mean-token-mean"), row_normalizer=4)
    assert loss.item() == pytest.approx(0.35, abs=1e-6)


def test_seq_mean_token_sum_norm():
    cfg = LossConfig(agg="seq-mean-token-sum-norm", max_new_tokens=4)
    loss, _ = policy_loss(*inputs(), cfg)
    assert loss.item() == pytest.approx((-2.7 / 4 + 4.6 / 4) / 2, abs=1e-6)  # 0.2375


def test_interleaved_tokens_give_the_same_row_aggregates():
    perm = [3, 0, 4, 1, 2]
    shuffled = inputs([RATIOS[i] for i in perm], [ADV[i] for i in perm], [ROWS[i] for i in perm])
    for cfg in (LossConfig(agg="seq-mean-token-mean"),
                LossConfig(agg="seq-mean-token-sum-norm", max_new_tokens=4)):
        assert policy_loss(*shuffled, cfg)[0].item() == pytest.approx(policy_loss(*inputs(), cfg)[0].item())


def test_dual_clip_caps_negative_advantage_loss():
    # c = 1.4: tok3 loss min(3, 1.4*2 = 2.8) = 2.8; tok4 1.6 < 2.8 unchanged; A>0 tokens unchanged.
    loss, m = policy_loss(*inputs(), LossConfig(dual_clip=1.4))
    assert loss.item() == pytest.approx((-2.7 + 2.8 + 1.6) / 5, abs=1e-6)  # 0.34
    assert m["dual_clip_fraction"] == pytest.approx(0.2)
    loss, _ = policy_loss(*inputs(), LossConfig(dual_clip=1.4, agg="seq-mean-token-mean"))
    assert loss.item() == pytest.approx((-0.9 + 2.2) / 2, abs=1e-6)
    # c = 2: 3 < 4, nothing changes
    assert policy_loss(*inputs(), LossConfig(dual_clip=2.0))[0].item() == pytest.approx(0.38, abs=1e-6)


# delta = logp_ref - logp = 0, ln 2, -ln 2, 20 (clamped to 10)
#   k1 = -delta:            0, -0.693147, 0.693147, -10         mean -2.5
#   k2 = delta^2 / 2:       0, 0.240227, 0.240227, 50           mean 12.620113
#   k3 = e^d - d - 1:       0, 0.306853, 0.193147, 22015.465795 mean 5503.991449
@pytest.mark.parametrize("estimator,values,mean", [
    ("k1", [0.0, -0.693147, 0.693147, -10.0], -2.5),
    ("k2", [0.0, 0.240227, 0.240227, 50.0], 12.620113),
    ("k3", [0.0, 0.306853, 0.193147, 22015.465795], 5503.991449),
])
def test_kl_estimators(estimator, values, mean):
    logp = torch.full((4,), math.log(0.5), dtype=torch.float64)
    ref = logp + torch.tensor([0.0, math.log(2), -math.log(2), 20.0], dtype=torch.float64)
    k = kl_penalty(logp, ref, estimator)
    torch.testing.assert_close(k, torch.tensor(values, dtype=torch.float64), atol=1e-5, rtol=1e-7)
    # ratio 1 and A = 0: the loss is only the KL term
    zeros, rows = torch.zeros(4, dtype=torch.float64), torch.tensor([0, 0, 1, 1])
    cfg = LossConfig(kl_coef=0.1, kl_estimator=estimator)
    loss, m = policy_loss(logp, logp, zeros, rows, cfg, ref_logp=ref)
    assert loss.item() == pytest.approx(0.1 * mean, rel=1e-6)
    assert m["kl"] == pytest.approx(mean, rel=1e-6) and m["pg_loss"] == 0.0


def test_first_step_loss_is_minus_mean_advantage():
    adv = torch.tensor([0.5, 0.5, -1.5, 2.0])
    logp = torch.log(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    loss, m = policy_loss(logp, logp.clone(), adv, torch.tensor([0, 0, 1, 2]), LossConfig())
    assert loss.item() == pytest.approx(-0.375, abs=1e-6)
    assert m["clip_fraction"] == 0.0 and m["ratio_mean"] == pytest.approx(1.0)


def test_gradient_direction():
    logp, old, adv, rows = inputs(ratios=[1.0, 1.0, 1.5, 0.5], adv=[1.0, -1.0, 1.0, -1.0], rows=[0, 0, 1, 1])
    loss, _ = policy_loss(logp, old, adv, rows, LossConfig())
    loss.backward()
    g = logp.grad
    assert g[0] < 0  # raising logp of a positive-advantage token lowers the loss
    assert g[1] > 0  # ... and of a negative-advantage token raises it
    assert g[2] == 0 and g[3] == 0  # clipped tokens carry no gradient
    with torch.no_grad():
        bumped = logp.clone()
        bumped[0] += 0.05
    assert policy_loss(bumped, old, adv, rows, LossConfig())[0].item() < loss.item()


def test_empty_micro_batch():
    empty = torch.zeros(0)
    loss, m = policy_loss(empty.requires_grad_(), empty, empty, empty.long(), LossConfig(agg="seq-mean-token-mean"))
    assert loss.item() == 0.0 and m["clip_fraction"] == 0.0


@pytest.mark.parametrize("kwargs,match", [
    ({"clip_low": -0.1}, "clip_low"),
    ({"clip_high": -0.1}, "clip_high"),
    ({"dual_clip": 1.0}, "dual_clip"),
    ({"kl_estimator": "k4"}, "kl_estimator"),
    ({"agg": "sum"}, "agg"),
    ({"kl_coef": -1.0}, "kl_coef"),
    ({"entropy_coef": -0.1}, "entropy_coef"),
    ({"agg": "seq-mean-token-sum-norm"}, "max_new_tokens"),
])
def test_bad_config_is_one_line_error(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        LossConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_kl_coef_needs_reference_and_shapes_must_match():
    logp, old, adv, rows = inputs()
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(logp, old, adv, rows, LossConfig(kl_coef=0.1))
    with pytest.raises(ValueError, match="advantages"):
        policy_loss(logp, old, adv[:3], rows, LossConfig())


def test_entropy_bonus_is_subtracted_per_token_and_pulls_towards_entropy():
    logp, old, adv, rows = inputs()
    entropy = torch.tensor([0.5, 0.0, 0.7, 0.2, 0.1], requires_grad=True)
    base, _ = policy_loss(logp, old, adv, rows, LossConfig())
    loss, _ = policy_loss(logp, old, adv, rows, LossConfig(entropy_coef=0.2), entropy=entropy)
    assert loss.item() == pytest.approx(base.item() - 0.2 * 1.5 / 5, abs=1e-6)
    loss.backward()
    assert torch.allclose(entropy.grad, torch.full((5,), -0.2 / 5))  # more entropy, lower loss
    with pytest.raises(ValueError, match="entropy"):
        policy_loss(logp, old, adv, rows, LossConfig(entropy_coef=0.2))


# --- GSPO sequence ratio ------------------------------------------------------------------------
# Row 0 has two tokens with log-ratios 0.1 and 0.3 -> s0 = exp(0.2) = 1.221403, A = +1;
# row 1 one token with -0.2 -> s1 = exp(-0.2) = 0.818731, A = -1.
# Clip 0.5 / 0.5 leaves both unclipped: per-token losses -s0, -s0, +s1; token-mean
# (-2 * 1.221403 + 0.818731) / 3 = -0.541358; d/dx of row 0's tokens = -s0 / 3 = -0.407134 each
# (the ratio is shared by the row's tokens), of row 1's token s1 / 3 = 0.272910.
def _gspo_inputs():
    logp = torch.tensor([0.1, 0.3, -0.2], requires_grad=True)
    return logp, torch.zeros(3), torch.tensor([1.0, 1.0, -1.0]), torch.tensor([0, 0, 1])


def test_gspo_sequence_ratio_loss_and_gradient():
    logp, old, adv, rows = _gspo_inputs()
    cfg = LossConfig(ratio="sequence", clip_low=0.5, clip_high=0.5)
    loss, info = policy_loss(logp, old, adv, rows, cfg)
    loss.backward()
    torch.testing.assert_close(loss, torch.tensor(-0.541358), atol=1e-5, rtol=0)
    torch.testing.assert_close(logp.grad, torch.tensor([-0.407134, -0.407134, 0.272910]), atol=1e-5, rtol=0)
    assert info["clip_fraction"] == 0.0


def test_gspo_has_its_own_narrow_clip_defaults():
    logp, old, adv, rows = _gspo_inputs()
    cfg = LossConfig(ratio="sequence")
    assert (cfg.clip_low, cfg.clip_high) == (3e-4, 4e-4)
    assert (LossConfig().clip_low, LossConfig().clip_high) == (0.2, 0.2)
    loss, info = policy_loss(logp, old, adv, rows, cfg)
    loss.backward()
    # both rows clipped: -(1 + 4e-4) twice and +(1 - 3e-4) -> (-2.0008 + 0.9997) / 3; no gradient
    torch.testing.assert_close(loss, torch.tensor(-1.0011 / 3), atol=1e-6, rtol=0)
    assert torch.count_nonzero(logp.grad) == 0 and info["clip_fraction"] == 1.0
    with pytest.raises(ValueError, match="loss.ratio"):
        LossConfig(ratio="turn")
