"""Small helpers shared by several test modules (tests/ is on sys.path through conftest.py)."""
from __future__ import annotations

import pytest

from mas.cli import main


def cli_error_line(capsys, argv) -> str:
    """Run `mas ARGV`, expect exit status 2 and exactly one line on stderr without a traceback."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def play_out(env, players, seed, rng):
    """Play one episode of a sequential game with bots; every action must be legal."""
    state = env.reset(seed)
    while not state.is_terminal():
        (seat,) = state.current_seats()
        action = players[seat].act(state, seat, rng)
        assert action in state.legal_actions(seat)
        state.apply(seat, action)
    return state
