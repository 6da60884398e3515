"""mc_grpo, gdpo, copo and spo against worked examples computed by hand (formulas:
docs/algorithms.md), the one-turn-vs-three-turns identity, the
extras they hand the loss, and SPO's tracker across a checkpoint."""
from __future__ import annotations

import pytest
import torch

from mas.records import Turn, TurnBatch
from mas.training.advantages import estimate, loss_rows, make_estimator
from mas.training.losses import LossConfig, policy_loss


def close(actual, expected):
    torch.testing.assert_close(torch.as_tensor(actual, dtype=torch.float32),
                               torch.tensor(expected, dtype=torch.float32), atol=1e-5, rtol=0)


def table(returns_per_group, *, turns_each=1, **per_trajectory):
    """One trajectory per return, one group per inner list; a trajectory's return (and each extra
    per-trajectory column: a value, or a dict of reward shares) spread over `turns_each` turns."""
    cols = {"episode_id": [], "group_id": [], "turn": [], "reward": []}
    extra = {k: [] for k in per_trajectory}
    shares: dict[str, list] = {}
    weights = [1.0] if turns_each == 1 else [0.25, 0.0, 0.75]
    e = 0
    for g, returns in enumerate(returns_per_group):
        for r in returns:
            for k, w in enumerate(weights):
                cols["episode_id"].append(e)
                cols["group_id"].append(g)
                cols["turn"].append(k)
                cols["reward"].append(r * w)
                for name, values in per_trajectory.items():
                    value = values[e]
                    if isinstance(value, dict):
                        for part, v in value.items():
                            shares.setdefault(part, []).append(v * w)
                    else:
                        extra[name].append(value)
            e += 1
    n = len(cols["turn"])
    extra = {k: v for k, v in extra.items() if v}
    return TurnBatch.from_columns(**cols, env="g", agent="p", seat=[0] * n, reward_parts=shares or None, **extra)


MC = [[0.2, 0.9, 0.5], [1, 0, 0]]


def test_mc_grpo_centres_on_the_median_and_masks_one_pivot_per_group():
    adv, aux = estimate("mc_grpo", table(MC), return_aux=True, zero_mad="eps")
    close(adv, [-0.996678, 1.328904, 0, 1000, 0, 0])
    close(aux["loss_mask"], [1, 1, 0, 1, 0, 1])  # g2's pivot: the first trajectory with R = m
    close(estimate("mc_grpo", table(MC), zero_mad="eps", rescale_nonzero=True), [-1.495017, 1.993355, 0, 3000, 0, 0])
    # mas's default keeps a zero MAD from blowing the advantage up: R - m there
    close(estimate("mc_grpo", table(MC)), [-0.996678, 1.328904, 0, 1, 0, 0])
    close(estimate("mc_grpo", table(MC), scale="none"), [-0.3, 0.4, 0, 1, 0, 0])


GDPO_SHARES = [{"f": 0, "c": 0}, {"f": 0, "c": 1}, {"f": 0, "c": 0}, {"f": 1, "c": 1}]


def test_gdpo_normalizes_each_reward_component_then_the_batch():
    batch = table([[0, 1], [0, 2]], shares=GDPO_SHARES)
    close(estimate("gdpo", batch), [-0.547680, 0.547680, -1.095360, 1.095360])
    # one component: GRPO on the total (std N-1, eps 1e-4), TRL's fallback
    close(estimate("gdpo", table([[0, 1], [0, 2]])), [-0.707007, 0.707007, -0.707057, 0.707057])
    with pytest.raises(ValueError, match="no reward component 'x' in this batch; components: c, f"):
        estimate("gdpo", batch, weights={"x": 2.0})


COPO_ANSWERS = ["12", "12", "12", "7", "3", "3", "3", "3"]


def test_copo_blends_global_and_local_advantages_by_answer_entropy():
    adv, aux = estimate("copo", table([[1, 1, 1, 0], [0, 0, 0, 0]], outcome_key=COPO_ANSWERS), return_aux=True)
    close(adv, [0.587564] * 3 + [-0.566828] + [-0.707105] * 4)
    close(aux["adv_global"], [0.707105] * 4 + [-0.707105] * 4)
    close(aux["adv_local"], [0.5, 0.5, 0.5, -1.5] + [0] * 4)
    close(aux["blend_w"], [0.577197] * 4 + [0] * 4)  # g2 is consistent (A_loc = 0): forced global


def test_copo_blend_in_the_loss_equals_the_blended_advantage_at_ratio_one():
    batch = table([[1, 1, 1, 0], [0, 0, 0, 0]], outcome_key=COPO_ANSWERS)
    adv, aux = estimate("copo", batch, return_aux=True)
    turns = [Turn(episode_id=i, group_id=0, env="g", agent="p", policy="p", seat=0, turn=0, step=0)
             for i in range(len(batch))]
    kept, values = loss_rows("copo", turns, adv, aux)
    assert kept == turns
    close(values[0], [[1 - 0.577197, 0.707105], [0.577197, 0.5]])
    pairs = torch.tensor(values)  # [rows, 2 terms, (weight, advantage)]
    logp = torch.full((8,), -1.0, requires_grad=True)
    blended, _ = policy_loss(logp, logp.detach(), pairs[..., 1], torch.arange(8), LossConfig(), mix=pairs[..., 0])
    plain, _ = policy_loss(logp, logp.detach(), adv, torch.arange(8), LossConfig())
    assert float(blended.detach()) == pytest.approx(float(plain.detach()), abs=1e-6)


def test_loss_rows_drop_the_masked_pivots():
    adv, aux = estimate("mc_grpo", table(MC), return_aux=True)
    turns = list(range(6))
    assert loss_rows("mc_grpo", turns, adv, aux) == ([0, 1, 3, 5], pytest.approx([-0.996678, 1.328904, 1, 0], abs=1e-5))


def spo_batch(turns_each=1):
    return table([[1], [0], [1]], turns_each=turns_each, task=["T1", "T2", "T3"])


def seeded_spo(**options):
    spo = make_estimator("spo", key=["task"], **options)
    spo.tracker.set("T1", 8 * 2.5 / 9, 8 * 6.5 / 9)  # an offline pass with 2 successes in 8
    spo.tracker.set("T3", 6, 2)
    return spo


def test_spo_advantages_and_tracker_update():
    spo = seeded_spo()
    close(spo(spo_batch()), [0.916387, -1.066614, 0.150227])
    spo.observe(spo_batch(), score=lambda turns: [None] * len(turns))  # first visits: rho = 0.96
    for key, (alpha, beta) in {"T1": (3.133333, 5.546667), "T2": (0.48, 1.48), "T3": (6.76, 1.92)}.items():
        assert spo.tracker.get(key) == pytest.approx((alpha, beta), abs=1e-5)
    with pytest.raises(ValueError, match="rho 'kl' re-scores"):
        spo.observe(spo_batch())


def test_spo_forgets_faster_when_the_policy_moved():
    turn = Turn(episode_id=0, group_id=0, env="g", agent="p", policy="p", seat=0, turn=0, step=0, reward=1.0,
                response_ids=[5, 6], task="T")
    batch = TurnBatch.from_turns([turn])
    spo = make_estimator("spo", key=["task"])
    spo.observe(batch, score=lambda turns: [[-1.0, -1.0] for _ in turns])  # stores the sample at -1, -1
    spo.observe(batch, score=lambda turns: [[-1.03, -1.03] for _ in turns])  # D = 0.03: 2^-0.5 -> 0.875
    alpha_after_first = 0.96 * 0.5 + 1
    assert spo.tracker.get("|".join(["T"])) == pytest.approx((0.875 * alpha_after_first + 1, 0.875 * 0.96 * 0.5))


def test_spo_state_survives_a_checkpoint_round_trip(tmp_path):
    spo = seeded_spo(rho=0.9)
    spo.observe(spo_batch())
    path = tmp_path / "estimator.pt"
    torch.save(spo.state_dict(), path)
    again = make_estimator("spo", key=["task"], rho=0.9)
    again.load_state_dict(torch.load(path, weights_only=False))
    assert again.tracker.params == spo.tracker.params
    close(again(spo_batch()), spo(spo_batch()).tolist())


@pytest.mark.parametrize("name,kwargs", [
    ("mc_grpo", {}), ("gdpo", {"shares": GDPO_SHARES}), ("copo", {"outcome_key": COPO_ANSWERS[:4]}),
])
def test_a_return_spread_over_three_turns_gives_the_same_advantages(name, kwargs):
    returns = [[0, 1], [0, 2]]
    one = estimate(name, table(returns, **kwargs))
    three = estimate(name, table(returns, turns_each=3, **kwargs)).reshape(-1, 3)
    assert torch.allclose(three, three[:, :1].expand(-1, 3))
    close(three[:, 0], one.tolist())


def test_spo_return_spread_over_three_turns_gives_the_same_advantages():
    close(seeded_spo()(spo_batch(turns_each=3)).reshape(-1, 3)[:, 0], seeded_spo()(spo_batch()).tolist())
