"""Planning an iteration's episodes over a mixture of games and opponents."""
from __future__ import annotations

from collections import Counter

import pytest

from mas.agents.bots import RandomBot
from mas.config import ConfigError
from mas.games import make
from mas.orchestration.matchmaking import GameSlot, plan_episodes, split_groups
from mas.validation import load_config


def test_split_groups_uses_largest_remainders():
    assert split_groups(10, [0.4, 0.3, 0.3]) == [4, 3, 3]
    assert split_groups(7, [0.4, 0.3, 0.3]) == [3, 2, 2]  # 2.8, 2.1, 2.1: the first gets the spare group
    assert sum(split_groups(13, [0.5, 0.25, 0.25])) == 13


def test_plan_over_a_mixture_with_a_bot_share():
    ttt, kuhn = make("tic_tac_toe"), make("kuhn_poker")
    bot = RandomBot()
    slots = [GameSlot(ttt, 0.5, ["A", "A"], {"random": bot}), GameSlot(kuhn, 0.5, ["A", "A"], {"random": bot})]
    specs = plan_episodes(slots, episodes=16, group_size=2, opponent_shares={"random": 0.5}, run_seed=3, iteration=2)
    assert len(specs) == 16 and Counter(s.env.id for s in specs) == {"tic_tac_toe": 8, "kuhn_poker": 8}
    assert [s.episode_id for s in specs] == list(range(32, 48))
    for a, b in zip(specs[::2], specs[1::2]):  # a group shares its seed, game and players
        assert a.group_id == b.group_id and a.seed == b.seed and a.env is b.env and a.players == b.players
    with_bot = [s for s in specs[::2] if bot in s.players]
    assert len(with_bot) == 4  # half of each game's 4 groups; the bot alternates seats
    assert {s.players.index(bot) for s in with_bot} == {0, 1}
    again = plan_episodes(slots, episodes=16, group_size=2, opponent_shares={"random": 0.5}, run_seed=3, iteration=2)
    assert [(s.seed, s.env.id) for s in again] == [(s.seed, s.env.id) for s in specs]


def test_random_openings_go_to_a_share_of_the_self_play_groups():
    ttt = make("tic_tac_toe")
    bot = RandomBot()
    slots = [GameSlot(ttt, 1.0, ["A", "A"], {"random": bot})]
    specs = plan_episodes(slots, episodes=16, group_size=2, opponent_shares={"random": 0.25}, run_seed=0, iteration=0,
                          opening_moves=3, opening_share=0.5)
    groups = specs[::2]
    assert [bot in s.players for s in groups] == [True, True] + [False] * 6
    assert [s.opening_moves for s in groups] == [0, 0, 3, 3, 3, 0, 0, 0]
    assert all(a.opening_moves == b.opening_moves for a, b in zip(specs[::2], specs[1::2]))


@pytest.mark.parametrize("overrides,match", [
    (["rollout.opening_moves=-1"], "rollout.opening_moves: must be >= 0"),
    (["rollout.opening_share=1.5"], r"rollout.opening_share must be in \[0, 1\]"),
    (["rollout.opening_moves=2", "env.history=true"], "needs env.history: false"),
])
def test_bad_opening_is_one_line(overrides, match):
    with pytest.raises(ConfigError, match=match) as err:
        load_config("configs/quickstart.yaml", overrides)
    assert "\n" not in str(err.value)
