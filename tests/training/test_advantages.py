"""Advantage estimators against hand-computed values (docs/algorithms.md, "Estimators").

Expected numbers were worked out by hand from the formulas (eps = 1e-6, population std unless noted)
and are written here, not recomputed with the package's code.
"""
import pytest
import torch

from mas.records import TurnBatch
from mas.training import advantages
from mas.training.advantages import (
    LossNeeds,
    StatefulEstimator,
    available_estimators,
    estimate,
    loss_needs,
    loss_rows,
    make_estimator,
    register_estimator,
)


def table(rows, env="game"):
    """rows: (episode_id, group_id, seat, turn, reward[, env])."""
    envs = [r[5] if len(r) > 5 else env for r in rows]
    return TurnBatch.from_columns(
        episode_id=[r[0] for r in rows],
        group_id=[r[1] for r in rows],
        env=envs,
        agent="player",
        seat=[r[2] for r in rows],
        turn=[r[3] for r in rows],
        reward=[r[4] for r in rows],
    )


def close(actual, expected):
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float32), atol=1e-5, rtol=0)


# --- grpo ---------------------------------------------------------------------------------------
# Group 10: two episodes of unequal length, both seats in the group.
#   R(ep1,s0) = 0+0+1 = 1, R(ep1,s1) = 0-1 = -1, R(ep2,s0) = 3, R(ep2,s1) = 1
#   one value per trajectory: mean 1, pop std sqrt(2) -> 0, -1.414213, +1.414213, 0
#   (per-row statistics would give mean 5/7 instead, and different numbers)
# Group 20: R = 2, 0 -> mean 1, std 1 -> +-0.999999
# Group 30: a single trajectory -> 0.   Group 40: R = 1 and 0.5+0.5 = 1, zero spread -> 0.
GRPO_ROWS = [
    (1, 10, 0, 0, 0.0),
    (1, 10, 1, 0, 0.0),
    (1, 10, 0, 1, 0.0),
    (1, 10, 1, 1, -1.0),
    (1, 10, 0, 2, 1.0),
    (2, 10, 0, 0, 3.0),
    (2, 10, 1, 0, 1.0),
    (3, 20, 0, 0, 1.0),
    (3, 20, 0, 1, 1.0),
    (3, 20, 1, 0, 0.0),
    (4, 30, 0, 0, 1.0),
    (4, 30, 0, 1, 2.0),
    (5, 40, 0, 0, 1.0),
    (6, 40, 0, 0, 0.5),
    (6, 40, 0, 1, 0.5),
]
S = 1.414213
GRPO_EXPECTED = [0, -S, 0, -S, 0, S, 0, 0.999999, 0.999999, -0.999999, 0, 0, 0, 0, 0]


def test_grpo_one_value_per_trajectory_groups_singletons_and_zero_spread():
    adv = estimate("grpo", table(GRPO_ROWS))
    assert adv.dtype == torch.float32 and adv.shape == (len(GRPO_ROWS),)
    close(adv, GRPO_EXPECTED)


def test_grpo_without_std_scaling_is_return_minus_group_mean():
    adv = estimate("grpo", table(GRPO_ROWS), scale_by_std=False)
    close(adv, [0, -2, 0, -2, 0, 2, 0, 1, 1, -1, 0, 0, 0, 0, 0])


def test_grpo_unbiased_std():
    # group 10: var = 8/3, std 1.632993 -> +-1.224744; group 20: std sqrt(2) -> +-0.707106
    adv = estimate("grpo", table(GRPO_ROWS), unbiased=True)
    u = 1.224744
    close(adv, [0, -u, 0, -u, 0, u, 0, 0.707106, 0.707106, -0.707106, 0, 0, 0, 0, 0])


def test_grpo_turn_count_does_not_weight_the_statistics():
    # Same returns (1, 0, 0) as one turn each, or with the first trajectory split into 3 turns.
    one = table([(1, 5, 0, 0, 1.0), (2, 5, 0, 0, 0.0), (3, 5, 0, 0, 0.0)])
    split = table([(1, 5, 0, 0, 0.25), (1, 5, 0, 1, 0.25), (1, 5, 0, 2, 0.5),
                   (2, 5, 0, 0, 0.0), (3, 5, 0, 0, 0.0)])
    # mean 1/3, std sqrt(2)/3 = 0.471405 -> 1.414211, -0.707105
    close(estimate("grpo", one), [1.414211, -0.707105, -0.707105])
    close(estimate("grpo", split), [1.414211] * 3 + [-0.707105] * 2)


# --- mars ---------------------------------------------------------------------------------------
# tic-tac-toe-like env "ttt": ep1 seat0 rewards 1,0,2 (3 turns), seat1 0,-1; ep2 seat0 4, seat1 1,1.
# env "kuhn": ep3 seat0 2, seat1 -2; ep4 seat0 0.
MARS_ROWS = [
    (1, 1, 0, 0, 1.0, "ttt"),
    (1, 1, 1, 0, 0.0, "ttt"),
    (1, 1, 0, 1, 0.0, "ttt"),
    (1, 1, 1, 1, -1.0, "ttt"),
    (1, 1, 0, 2, 2.0, "ttt"),
    (2, 2, 0, 0, 4.0, "ttt"),
    (2, 2, 1, 0, 1.0, "ttt"),
    (2, 2, 1, 1, 1.0, "ttt"),
    (3, 3, 0, 0, 2.0, "kuhn"),
    (3, 3, 1, 0, -2.0, "kuhn"),
    (4, 4, 0, 0, 0.0, "kuhn"),
]


def test_mars_gamma_1_per_env_and_seat():
    # (ttt, 0): G = 3, 2, 2 | 4 -> mean 2.75, std 0.829156
    # (ttt, 1): G = -1, -1 | 2, 1 -> mean 0.25, std 1.299038
    # (kuhn, 0): G = 2, 0 -> +-0.999999; (kuhn, 1): one row -> 0
    adv = estimate("mars", table(MARS_ROWS))
    assert adv.dtype == torch.float32 and adv.shape == (11,)
    close(adv, [0.301511, -0.96225, -0.904533, -0.96225, -0.904533, 1.507555, 1.34715, 0.57735,
                0.999999, 0.0, -0.999999])


def test_mars_gamma_half():
    # (ttt, 0): G = 1 + .5*(0 + .5*2) = 1.5, 0 + .5*2 = 1, 2 | 4
    # (ttt, 1): G = 0 + .5*(-1) = -0.5, -1 | 1 + .5*1 = 1.5, 1
    adv = estimate("mars", table(MARS_ROWS), gamma=0.5)
    close(adv, [-0.548821, -0.727606, -0.987877, -1.212677, -0.109764, 1.646462, 1.212677, 0.727606,
                0.999999, 0.0, -0.999999])


def test_mars_norm_by_env_pools_seats():
    # ttt: G = 3, -1, 2, -1, 2, 4, 2, 1 -> mean 1.5, std 1.658312; kuhn: 2, -2, 0 -> std 1.632993
    adv = estimate("mars", table(MARS_ROWS), norm_by=["env"])
    close(adv, [0.904533, -1.507556, 0.301511, -1.507556, 0.301511, 1.507556, 0.301511, -0.301511,
                1.224744, -1.224744, 0.0])


def test_mars_unbiased():
    # kuhn pooled by env: 2, -2, 0 with N-1 std = 2 -> +-0.9999995
    adv = estimate("mars", table(MARS_ROWS), norm_by=["env"], unbiased=True)
    close(adv[8:], [0.9999995, -0.9999995, 0.0])


def test_mars_normalizes_envs_separately():
    rows = [(1, 1, 0, 0, 0.0, "a"), (2, 2, 0, 0, 1.0, "a"),
            (3, 3, 0, 0, 0.0, "b"), (4, 4, 0, 0, 100.0, "b")]
    close(estimate("mars", table(rows)), [-0.999998, 0.999998, -1.0, 1.0])


def test_mars_single_row_key_and_zero_spread_give_zero():
    rows = [(1, 1, 0, 0, 5.0), (2, 2, 1, 0, 3.0), (3, 3, 1, 0, 3.0)]
    close(estimate("mars", table(rows)), [0.0, 0.0, 0.0])


def test_mars_duplicate_turn_and_bad_options_are_errors():
    with pytest.raises(ValueError, match="turn 0"):
        estimate("mars", table([(1, 1, 0, 0, 1.0), (1, 1, 0, 0, 2.0)]))
    with pytest.raises(ValueError, match="gamma"):
        estimate("mars", table(MARS_ROWS), gamma=1.5)
    with pytest.raises(ValueError, match="no column 'team'"):
        estimate("mars", table(MARS_ROWS), norm_by=["team"])


# --- row order, output contract -----------------------------------------------------------------
@pytest.mark.parametrize("name,rows", [("grpo", GRPO_ROWS), ("mars", MARS_ROWS)])
def test_shuffled_rows_permute_the_output(name, rows):
    batch = table(rows)
    perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))
    assert not torch.equal(perm, torch.arange(len(rows)))
    base = estimate(name, batch)
    shuffled = estimate(name, batch.select(perm))
    torch.testing.assert_close(shuffled, base[perm], atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["grpo", "mars"])
def test_empty_batch_and_aux(name):
    empty = table([])
    assert estimate(name, empty).shape == (0,)
    adv, aux = estimate(name, table(MARS_ROWS), return_aux=True)
    assert adv.dtype == torch.float32 and adv.shape == (11,) and aux == {}


# --- registry -----------------------------------------------------------------------------------
def test_registry_lists_and_rejects_unknown_names_and_options():
    assert {"grpo", "mars"} <= set(available_estimators())
    with pytest.raises(ValueError, match="unknown estimator 'nope'.*grpo.*mars") as err:
        estimate("nope", table(GRPO_ROWS))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="'grpo' has no option 'gamma'.*scale_by_std, unbiased") as err:
        estimate("grpo", table(GRPO_ROWS), gamma=0.9)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="no option 'norm'.*gamma, norm_by, unbiased"):
        make_estimator("mars", norm=["env"])
    with pytest.raises(ValueError, match="unknown estimator"):
        make_estimator("nope")


def test_make_estimator_binds_options_and_has_empty_state():
    est = make_estimator("grpo", scale_by_std=False)
    close(est(table(GRPO_ROWS)), [0, -2, 0, -2, 0, 2, 0, 1, 1, -1, 0, 0, 0, 0, 0])
    assert est.state_dict() == {}
    est.load_state_dict({})


def test_stateful_estimators_come_from_make_estimator():
    @register_estimator("_test_counter")
    class Counter(StatefulEstimator):
        def __init__(self, *, start: int = 0):
            self.calls = start

        def __call__(self, batch):
            self.calls += 1
            return torch.full((len(batch),), float(self.calls))

        def state_dict(self):
            return {"calls": self.calls}

        def load_state_dict(self, state):
            self.calls = state["calls"]

    try:
        est = make_estimator("_test_counter", start=2)
        assert est(table(GRPO_ROWS))[0] == 3.0 and est.state_dict() == {"calls": 3}
        with pytest.raises(ValueError, match="make_estimator"):
            estimate("_test_counter", table(GRPO_ROWS))
    finally:
        advantages._REGISTRY.pop("_test_counter", None)
    with pytest.raises(ValueError, match="already registered"):
        register_estimator("grpo")(lambda batch: None)
    with pytest.raises(TypeError, match="must inherit StatefulEstimator"):
        register_estimator("_test_loose")(type("Loose", (), {}))


def test_estimators_declare_what_they_ask_of_the_loss():
    assert loss_needs("ngrpo") == LossNeeds(clip=(0.16, 0.24))
    assert loss_needs("mc_grpo").row_mask and loss_needs("copo").blend
    assert loss_needs("grpo") == LossNeeds()
    with pytest.raises(RuntimeError, match="did not return: loss_mask"):
        loss_rows("mc_grpo", [0, 1], torch.zeros(2), {})
