"""dr_grpo, ngrpo, bnpo and agrae against worked examples whose numbers
were computed by hand, not by the code under test (formulas: docs/algorithms.md)."""
from __future__ import annotations

import pytest
import torch

from mas.records import TurnBatch
from mas.training.advantages import estimate


def close(actual, expected):
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float32), atol=1e-5, rtol=0)


def groups(*returns_per_group, n_tokens=3):
    """One single-turn trajectory per return, one group per argument (each answer `n_tokens` long)."""
    ep, gid, rew = [], [], []
    for g, returns in enumerate(returns_per_group):
        for r in returns:
            ep.append(len(ep))
            gid.append(g)
            rew.append(float(r))
    n = len(ep)
    return TurnBatch.from_columns(episode_id=ep, group_id=gid, env="g", agent="p", seat=[0] * n, turn=[0] * n,
                                  reward=rew, n_tokens=None if n_tokens is None else [n_tokens] * n)


def test_dr_grpo_centres_without_std():
    close(estimate("dr_grpo", groups([1, 0, 0])), [0.666667, -0.333333, -0.333333])
    close(estimate("dr_grpo", groups([1], [2, 2])), [0, 0, 0])  # a single trajectory, zero spread


def test_ngrpo_adds_a_virtual_best_sample_to_the_statistics():
    close(estimate("ngrpo", groups([0, 0, 0], [1, 0, 0], [1, 1, 1])),
          [-0.499999] * 3 + [0.866024, -0.866024, -0.866024] + [0, 0, 0])
    with pytest.raises(ValueError, match="max_reward 1 is below a trajectory return 2"):
        estimate("ngrpo", groups([2, 0]))


def test_bnpo_fits_a_beta_to_the_group_means():
    a = estimate("bnpo", groups([1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]))
    close(a, [0.680175] + [-0.226725] * 3 + [0.392699] * 2 + [-0.392699] * 2 + [0.226725] * 3 + [-0.680175])
    with pytest.raises(ValueError, match=r"returns must lie in \[0, 1\]"):
        estimate("bnpo", groups([1, -1]))


def test_agrae_shrinks_positive_advantages_by_accuracy():
    a = estimate("agrae", groups([1, 0, 0, 0], [1, 1, 1, 0]))
    close(a, [0.749997] + [-0.499998] * 3 + [0.538670] * 3 + [-3.232023])


TRAJECTORY_LEVEL = ["dr_grpo", "ngrpo", "bnpo", "agrae", "hapo_tlga"]


@pytest.mark.parametrize("name", TRAJECTORY_LEVEL)
def test_a_return_spread_over_three_turns_gives_the_same_advantages(name):
    returns = [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]]
    one_turn = groups(*returns)
    ep, gid, turn, rew = [], [], [], []
    for g, rs in enumerate(returns):
        for r in rs:
            e = len({*ep}) if ep else 0
            for k, part in enumerate([r * 0.25, 0.0, r * 0.75]):
                ep.append(e)
                gid.append(g)
                turn.append(k)
                rew.append(part)
    n = len(ep)
    three = TurnBatch.from_columns(episode_id=ep, group_id=gid, env="g", agent="p", seat=[0] * n, turn=turn, reward=rew,
                                   n_tokens=[1] * n)  # 3 tokens per trajectory, as in `groups`
    per_turn = estimate(name, three).reshape(-1, 3)
    assert torch.allclose(per_turn, per_turn[:, :1].expand(-1, 3))
    close(per_turn[:, 0], estimate(name, one_turn).tolist())


def test_group_by_seat_splits_self_play_groups():
    # one group, seats 0 and 1 of two games: by group_id the four returns compete; by (group, seat)
    # each seat's two games do
    batch = TurnBatch.from_columns(episode_id=[0, 0, 1, 1], group_id=[0, 0, 0, 0], env="g", agent="p",
                                   seat=[0, 1, 0, 1], turn=[0, 0, 0, 0], reward=[1.0, 0.0, 1.0, 1.0])
    close(estimate("dr_grpo", batch), [0.25, -0.75, 0.25, 0.25])
    close(estimate("dr_grpo", batch, group_by=("group_id", "seat")), [0, -0.5, 0, 0.5])


def test_mapo_mixes_turn_level_and_batch_level_normalization():
    # one group, two episodes of two turns: E1 rewards 1, 2 (G = 3, 2); E2 rewards 0, 1 (G = 1, 1)
    batch = TurnBatch.from_columns(episode_id=[1, 1, 2, 2], group_id=[0] * 4, env="g", agent="p", seat=[0] * 4,
                                   turn=[0, 1, 0, 1], reward=[1.0, 2.0, 0.0, 1.0])
    close(estimate("mapo", batch), [1.006344, 0.484111, -0.745227, -0.745227])
    with pytest.raises(ValueError, match="mix must lie in"):
        estimate("mapo", batch, mix=2)


def test_hapo_token_level_group_average_weights_returns_by_length():
    batch = TurnBatch.from_columns(episode_id=[0, 1, 2], group_id=[0] * 3, env="g", agent="p", seat=[0] * 3,
                                   turn=[0] * 3, reward=[1.0, 0.0, 0.0], n_tokens=[2, 4, 6])
    close(estimate("hapo_tlga", batch), [2.236062, -0.447212, -0.447212])
    # a long losing majority pushes the short winner past 5: the group falls back to GRPO (std N-1)
    skew = TurnBatch.from_columns(episode_id=[0, 1, 2], group_id=[0] * 3, env="g", agent="p", seat=[0] * 3,
                                  turn=[0] * 3, reward=[1.0, 0.0, 0.0], n_tokens=[1, 100, 100])
    close(estimate("hapo_tlga", skew), [1.154699, -0.577349, -0.577349])
    with pytest.raises(ValueError, match="no column 'n_tokens'"):
        estimate("hapo_tlga", groups([1, 0], n_tokens=None))


# gigpo, worked by hand: three episodes of one group; states s0..s3; gamma 0.95, mean_norm
GIGPO = TurnBatch.from_columns(
    episode_id=[0, 0, 0, 1, 1, 2, 2], group_id=[0] * 7, env="g", agent="p", seat=[0] * 7,
    turn=[0, 1, 2, 0, 1, 0, 1], reward=[0, 0, 1, 0, 0, 0, 0], obs_key=["s0", "s1", "s2", "s0", "s3", "s0", "s1"])


def test_gigpo_adds_anchor_state_step_advantages():
    close(estimate("gigpo", GIGPO), [1.173095, 1.046429, 0.571429, -0.729405, -0.428571, -0.729405, -0.903571])
    close(estimate("gigpo", GIGPO, episode_stats_over="trajectories"),
          [1.268333, 1.141667, 0.666667, -0.634167, -0.333333, -0.634167, -0.808333])


def test_gigpo_does_not_depend_on_row_order():
    order = [6, 2, 4, 0, 5, 3, 1]
    close(estimate("gigpo", GIGPO.select(order)), estimate("gigpo", GIGPO)[order].tolist())


def test_hgpo_weights_deeper_context_groups_more():
    # hgpo, worked by hand: gamma 1, history 1, A = s0 s1 s2 (0, 0, 1), B = s0 s3 s1 (0, 0, .5), C = s0 s1 (0, 0)
    batch = TurnBatch.from_columns(
        episode_id=[0, 0, 0, 1, 1, 1, 2, 2], group_id=[0] * 8, env="g", agent="p", seat=[0] * 8,
        turn=[0, 1, 2, 0, 1, 2, 0, 1], reward=[0, 0, 1, 0, 0, 0.5, 0, 0],
        obs_key=["s0", "s1", "s2", "s0", "s3", "s1", "s0", "s1"])
    a = estimate("hgpo", batch, gamma=1.0, history=1)
    close(a, [1.224741, 1.089895, 0, 0, 0, 0, -1.224741, -1.089895])
    order = [7, 3, 0, 5, 1, 6, 2, 4]
    close(estimate("hgpo", batch.select(order), gamma=1.0, history=1), a[order].tolist())
