"""reinforce_pp, seeupo, drmas, advevo and rae against hand-computed values (docs/algorithms.md).

The expected numbers were worked out by hand (eps = 1e-6, population std unless noted) and are
written here, not recomputed with the package's code."""
from __future__ import annotations

import pytest
import torch

from mas.records import TurnBatch
from mas.training.advantages import estimate, make_estimator


def close(actual, expected):
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float32), atol=1e-5, rtol=0)


# --- reinforce_pp / seeupo ----------------------------------------------------------------------
# Group 1: R(ep1,s0) = 0+1 = 1 (two turns), R(ep1,s1) = -1, R(ep2,s0) = 3, R(ep2,s1) = 1:
#   mu = 1 (one value per trajectory) -> centred 0, -2, 2, 0.   Group 2: one trajectory -> 0.
# Rows: 0, 0, -2, 2, 0, 0 -> mean 0, pop std sqrt(8/6) = 1.154701 -> +-1.732049 (unbiased: +-1.581138)
# (grpo would divide by the group's std sqrt(2) instead: +-1.414213)
CENTRED = TurnBatch.from_columns(
    episode_id=[1, 1, 1, 2, 2, 3], group_id=[1, 1, 1, 1, 1, 2], env="g", agent="p",
    seat=[0, 0, 1, 0, 1, 0], turn=[0, 1, 0, 0, 0, 0], reward=[0.0, 1.0, -1.0, 3.0, 1.0, 5.0])


def test_reinforce_pp_centres_on_the_group_mean_then_whitens_rows():
    close(estimate("reinforce_pp", CENTRED), [0, 0, -1.732049, 1.732049, 0, 0])
    close(estimate("reinforce_pp", CENTRED, whiten=False), [0, 0, -2, 2, 0, 0])
    close(estimate("reinforce_pp", CENTRED, unbiased=True), [0, 0, -1.581138, 1.581138, 0, 0])
    close(estimate("grpo", CENTRED), [0, 0, -1.414213, 1.414213, 0, 0])


def test_seeupo_is_centred_whitened_and_optionally_clamped():
    close(estimate("seeupo", CENTRED), [0, 0, -1.732049, 1.732049, 0, 0])
    close(estimate("seeupo", CENTRED, clamp=1.5), [0, 0, -1.5, 1.5, 0, 0])
    with pytest.raises(ValueError, match="clamp"):
        estimate("seeupo", CENTRED, clamp=0)


# --- drmas --------------------------------------------------------------------------------------
# A solver (seat 0) that acts twice in ep1 and once in ep2, a verifier (seat 1) once each; group 7.
#   R(ep1, solver) = -0.1 + 1.0 = 0.9, R(ep2, solver) = 0; R(ep1, verifier) = 1, R(ep2, verifier) = 0.
# Solver rows (one value per row): 0.9, 0.9, 0 -> mean 0.6, pop std sqrt(0.18) -> 0.707105, 0.707105,
#   -1.414210 (unbiased std sqrt(0.27): 0.577349, 0.577349, -1.154698).
# Verifier rows: 1, 0 -> +-0.999998 (unbiased: +-0.707106).
WORKFLOW = TurnBatch.from_columns(
    episode_id=[1, 1, 1, 2, 2], group_id=[7] * 5, env="math",
    agent=["solver", "solver", "verifier", "solver", "verifier"],
    seat=[0, 0, 1, 0, 1], turn=[0, 1, 0, 0, 0], reward=[-0.1, 1.0, 1.0, 0.0, 0.0])


def test_drmas_normalizes_each_agent_within_its_group_counting_rows():
    close(estimate("drmas", WORKFLOW), [0.707105, 0.707105, 0.999998, -1.414210, -0.999998])
    close(estimate("drmas", WORKFLOW, unbiased=True), [0.577349, 0.577349, 0.707106, -1.154698, -0.707106])
    close(estimate("drmas", WORKFLOW, scale_by_std=False), [0.3, 0.3, 0.5, -0.6, -0.5])


def test_drmas_pools_both_seats_of_a_self_play_agent_and_zeroes_single_rows():
    batch = TurnBatch.from_columns(
        episode_id=[1, 1, 2], group_id=[1, 1, 2], env="g", agent="player", seat=[0, 1, 0], turn=[0, 0, 0],
        reward=[1.0, -1.0, 4.0])
    close(estimate("drmas", batch), [0.999999, -0.999999, 0.0])


# --- advevo -------------------------------------------------------------------------------------
# Attackers att1 (seat 0), att2 (seat 1); the defenders group has one agent, def (seat 2); group 3.
#   ep1: att1 R = 1, att2 R = 0, def R = 0.5 + 0.5 = 1 (two rows);  ep2: att1 0, att2 1, def -1.
#   b(attackers) = mean(1, 0, 0, 1) = 0.5; b(defenders) = mean(1, -1) = 0.
# Rows: 0.5, -0.5, 1, 1, -0.5, 0.5, -1 -> mean 1/7, pop std 0.742307 ->
#   0.481125, -0.866024, 1.154699, 1.154699, -0.866024, 0.481125, -1.539599
ATTACK = dict(
    episode_id=[1, 1, 1, 1, 2, 2, 2], group_id=[3] * 7, env="safety",
    agent=["att1", "att2", "def", "def", "att1", "att2", "def"],
    seat=[0, 1, 2, 2, 0, 1, 2], turn=[0, 0, 0, 1, 0, 0, 0], reward=[1.0, 0.0, 0.5, 0.5, 0.0, 1.0, -1.0])
GROUPS = {"attackers": ["att1", "att2"], "defenders": ["def"]}
ADVEVO = [0.481125, -0.866024, 1.154699, 1.154699, -0.866024, 0.481125, -1.539599]


def test_advevo_public_baseline_per_functional_group():
    batch = TurnBatch.from_columns(**ATTACK)
    close(estimate("advevo", batch, groups=GROUPS), ADVEVO)
    close(estimate("advevo", batch, groups=GROUPS, whiten=False), [0.5, -0.5, 1, 1, -0.5, 0.5, -1])


def test_advevo_reads_the_agents_groups_from_the_config_column():
    labels = ["attackers", "attackers", "defenders", "defenders", "attackers", "attackers", "defenders"]
    batch = TurnBatch.from_columns(**ATTACK, agent_group=labels)
    close(estimate("advevo", batch), ADVEVO)
    # without groups every agent is its own group: att1's returns 1, 0 -> +-0.5 before whitening
    close(estimate("advevo", TurnBatch.from_columns(**ATTACK), whiten=False), [0.5, -0.5, 1, 1, -0.5, 0.5, -1])


def test_advevo_agent_in_no_group_or_two_groups_is_an_error():
    batch = TurnBatch.from_columns(**ATTACK)
    with pytest.raises(ValueError, match="agent 'def' is in no group"):
        estimate("advevo", batch, groups={"attackers": ["att1", "att2"]})
    with pytest.raises(ValueError, match="in two groups"):
        estimate("advevo", batch, groups={"a": ["att1", "att2", "def"], "b": ["def"]})


# --- rae ----------------------------------------------------------------------------------------
# Batch 1 (rows given with episode 2 first): ep1 s0 +1, s1 -1; ep2 s0 -2, s1 +2. Baselines start at 0,
#   so A = R. Updates in ascending episode id, alpha 0.95:
#   b0: 0.05 * 1 = 0.05, then 0.95 * 0.05 + 0.05 * (-2) = -0.0525;  b1: -0.05, then 0.0525.
#   (episode order reversed would give b0 = -0.045: the order matters.)
# Batch 2: ep3 s0 R = 1, s1 R = -1 -> A = 1.0525, -1.0525.
RAE_1 = TurnBatch.from_columns(episode_id=[2, 2, 1, 1], group_id=[2, 2, 1, 1], env="kuhn", agent="p",
                               seat=[0, 1, 0, 1], turn=[0, 0, 0, 0], reward=[-2.0, 2.0, 1.0, -1.0])
RAE_2 = TurnBatch.from_columns(episode_id=[3, 3], group_id=[3, 3], env="kuhn", agent="p",
                               seat=[0, 1], turn=[0, 0], reward=[1.0, -1.0])


def test_rae_baseline_per_env_and_seat_across_batches():
    rae = make_estimator("rae")
    close(rae(RAE_1), [-2, 2, 1, -1])
    close(rae(RAE_2), [1.0525, -1.0525])


def test_rae_state_survives_a_checkpoint(tmp_path):
    rae = make_estimator("rae", alpha=0.95)
    rae(RAE_1)
    torch.save(rae.state_dict(), tmp_path / "rae.pt")
    restored = make_estimator("rae", alpha=0.95)
    restored.load_state_dict(torch.load(tmp_path / "rae.pt"))
    close(restored(RAE_2), [1.0525, -1.0525])
    with pytest.raises(ValueError, match="alpha"):
        make_estimator("rae", alpha=1.0)
    with pytest.raises(ValueError, match="keeps state"):
        estimate("rae", RAE_1)


@pytest.mark.parametrize("name, options", [("reinforce_pp", {}), ("seeupo", {"clamp": 3}), ("drmas", {}),
                                           ("advevo", {"groups": GROUPS})])
def test_shuffled_rows_permute_the_output(name, options):
    batch = TurnBatch.from_columns(**ATTACK)
    order = [6, 2, 0, 5, 3, 1, 4]
    shuffled = TurnBatch.from_columns(**{k: ([v[i] for i in order] if isinstance(v, list) else v)
                                         for k, v in ATTACK.items()})
    torch.testing.assert_close(estimate(name, shuffled, **options), estimate(name, batch, **options)[order])


# A group whose returns are all equal (zero spread) and a group of one trajectory give 0 to their
# rows before any whitening; group 9 (R = 2 and 0) is the only one with signal: +-1 before whitening.
FLAT = TurnBatch.from_columns(
    episode_id=[1, 1, 2, 2, 3, 4, 5], group_id=[8, 8, 8, 8, 7, 9, 9], env="g", agent="p",
    seat=[0, 0, 0, 1, 0, 0, 0], turn=[0, 1, 0, 0, 0, 0, 0], reward=[0.5, 0.5, 1.0, 1.0, 3.0, 2.0, 0.0])


@pytest.mark.parametrize("name, options, signal", [
    ("grpo", {}, 0.999999), ("reinforce_pp", {"whiten": False}, 1.0), ("seeupo", {"whiten": False}, 1.0),
    ("drmas", {}, 0.999999), ("advevo", {"whiten": False, "groups": {"all": ["p"]}}, 1.0),
])
def test_zero_spread_and_single_value_groups_give_zero(name, options, signal):
    close(estimate(name, FLAT, **options), [0, 0, 0, 0, 0, signal, -signal])
