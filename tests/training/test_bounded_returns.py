"""The bounded estimators (bnpo, agrae, spo, ngrpo) accept a return at its bound when it is a sum of
turn rewards that rounds just past it: TurnBatch stores rewards as float32, so three turns of 1/3
sum to 1.00000003. Returns clearly outside the bounds still fail in one line."""
from __future__ import annotations

import pytest
import torch

from mas.records import TurnBatch
from mas.training.advantages import estimate, make_estimator

THIRD = 1 / 3


def batch(returns_per_group, turns_each=1):
    """One trajectory per return, one group per list; each return split evenly over `turns_each`
    turns, so a return of 1 over three turns is three rewards of 1/3."""
    ep, gid, turn, rew = [], [], [], []
    for g, returns in enumerate(returns_per_group):
        for r in returns:
            e = len(set(ep))
            for k in range(turns_each):
                ep.append(e)
                gid.append(g)
                turn.append(k)
                rew.append(r / turns_each)
    n = len(ep)
    return TurnBatch.from_columns(episode_id=ep, group_id=gid, env="g", agent="p", seat=[0] * n, turn=turn,
                                  reward=rew, n_tokens=[1] * n, task=[f"T{g}" for g in gid])


def test_a_third_per_turn_sums_past_the_bound():
    # the premise: without a tolerance these returns are outside [-1, 1]
    returns = batch([[1, -1]], turns_each=3).reward.double().reshape(-1, 3).sum(dim=1)
    assert float(returns[0]) > 1 and float(returns[1]) < -1


def run(name, b, **options):
    if name == "spo":
        return make_estimator("spo", rho=0.9, key=["task"], **options)(b)
    return estimate(name, b, **options)


# (estimator, options, groups of returns at or between the bounds)
CASES = [
    ("bnpo", {}, [[1, 0, 0, 1], [1, 1, 0, 1], [0, 0, 1, 0]]),
    ("bnpo", {"min_reward": -1.0}, [[1, -1, -1, 0], [1, 1, -1, 1], [-1, 0, 1, -1]]),
    ("agrae", {}, [[1, 0, 0, 0], [1, 1, 1, 0]]),
    ("agrae", {"min_reward": -1.0}, [[1, -1, -1, 0], [1, 1, 1, -1]]),
    ("spo", {}, [[1, 0, 1], [0, 1, 1]]),
    ("spo", {"min_reward": -1.0}, [[1, -1, 1], [-1, 0, 1]]),
    ("ngrpo", {}, [[1, 0, 0], [1, 1, 0], [1, 1, 1]]),
    ("ngrpo", {}, [[1, -1, -1], [1, 1, -1]]),
]


@pytest.mark.parametrize("name,options,returns", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_returns_at_the_bound_split_over_turns_are_accepted(name, options, returns):
    exact = run(name, batch(returns), **options)
    three = run(name, batch(returns, turns_each=3), **options).reshape(-1, 3)
    assert torch.allclose(three, three[:, :1].expand(-1, 3))
    torch.testing.assert_close(three[:, 0], exact, atol=1e-6, rtol=0)
    assert torch.isfinite(exact).all() and exact.abs().sum() > 0


def test_spo_observes_a_split_return_as_a_full_success():
    exact, split = make_estimator("spo", rho=0.9, key=["task"]), make_estimator("spo", rho=0.9, key=["task"])
    exact.observe(batch([[1, 0, 1]]))
    split.observe(batch([[1, 0, 1]], turns_each=3))
    assert split.tracker.get("T0") == pytest.approx(exact.tracker.get("T0"), abs=1e-12)


@pytest.mark.parametrize("name,options,returns,message", [
    ("bnpo", {}, [[1.01, 0]], r"^bnpo: trajectory returns must lie in \[0, 1\], got \[0, 1\.01\]; "
                              r"rescale the rewards$"),
    ("bnpo", {}, [[1, -0.01]], r"^bnpo: trajectory returns must lie in \[0, 1\], got \[-0\.01, 1\]"),
    ("agrae", {"min_reward": -1.0}, [[1.001, -1]], r"^agrae: trajectory returns must lie in \[-1, 1\], got "
                                                  r"\[-1, 1\.001\]"),
    ("spo", {}, [[1, 1.0001]], r"^spo: trajectory returns must lie in \[0, 1\], got \[1, 1\.0001\]; "
                               r"set min_reward/max_reward$"),
    ("ngrpo", {}, [[1.0001, 0]], r"^ngrpo: max_reward 1 is below a trajectory return 1\.0001; "),
])
def test_returns_clearly_outside_the_bounds_still_fail(name, options, returns, message):
    with pytest.raises(ValueError, match=message) as info:
        run(name, batch(returns, turns_each=3), **options)
    assert "\n" not in str(info.value)
