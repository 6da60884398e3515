"""`mas play`: a scripted human through a pseudo-terminal, hidden cards, determinism, quitting."""
from __future__ import annotations

import argparse
import io
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mas.evaluation.play import parse_human, run_play
from mas.games import make

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")

ROOT = Path(__file__).resolve().parents[2]
LEGAL = ["<X(0,0)>", "<X(1,1)>", "<X(2,1)>"]


class Terminal:
    """A child process on a pseudo-terminal; every read has a deadline so a hang fails the test."""

    def __init__(self, argv: list[str], timeout: float = 60.0):
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, close_fds=True)
        os.close(slave)
        self.deadline = time.monotonic() + timeout
        self.text = ""  # everything read so far

    def read_until(self, *markers: str) -> str:
        """Read until one of `markers` appears in the new output; returns the new output."""
        start = len(self.text)
        while not any(m in self.text[start:] for m in markers):
            if not self._read_some():
                raise AssertionError(f"the game ended before {markers}:\n{self.text}")
        return self.text[start:]

    def read_to_end(self) -> int:
        while self._read_some():
            pass
        return self.proc.wait(timeout=max(1.0, self.deadline - time.monotonic()))

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def _read_some(self) -> bool:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.proc.kill()
            raise AssertionError(f"mas play hung; output so far:\n{self.text}")
        ready, _, _ = select.select([self.master], [], [], left)
        if not ready:
            return self._read_some()
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.text += chunk.decode(errors="replace").replace("\r\n", "\n")
        return bool(chunk)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def legal_moves(output: str) -> list[str]:
    return re.findall(r"^legal moves: (.*)$", output, re.MULTILINE)[-1].split()


def test_parse_human_accepts_loose_input():
    assert parse_human("x(1,1)", LEGAL) == "<X(1,1)>"
    assert parse_human(" <X( 2 , 1 )> ", LEGAL) == "<X(2,1)>"
    assert parse_human("1,1", LEGAL) == "<X(1,1)>"  # just the numbers, when one legal move has them
    assert parse_human("0 0", LEGAL) == "<X(0,0)>"
    assert parse_human("1,2", LEGAL) is None  # not legal
    assert parse_human("1", LEGAL) is None
    assert parse_human("o(1,1)", LEGAL) is None
    assert parse_human("bet", ["<PASS>", "<BET>"]) == "<BET>"


def test_tic_tac_toe_game_through_a_pseudo_terminal(tiny_path):
    term = Terminal([sys.executable, "-m", "mas.cli", "play", "--policy", "tiny-xs", "--env", "tic_tac_toe",
                     "--constrained", "--seed", "0"])
    try:
        out = term.read_until("your move: ")
        assert "legal moves: <X(0,0)>" in out
        term.send("banana")
        refusal = term.read_until("your move: ")
        assert "'banana' is not a legal move; legal moves: <X(0,0)>" in refusal
        first = legal_moves(out)[4]  # the centre
        term.send(first.strip("<>").lower())  # loose input: x(1,1)
        occupied_tried = False
        while True:
            out = term.read_until("your move: ", "result: ")
            if "result: " in out:
                break
            if not occupied_tried:  # a square that is taken is refused too, and the game goes on
                occupied_tried = True
                term.send(first)
                assert f"'{first}' is not a legal move" in term.read_until("your move: ")
            term.send(legal_moves(out)[0])
        assert occupied_tried, "the agent never got a move"
        status = term.read_to_end()
    finally:
        term.close()
    assert status == 0
    assert re.search(r"^agent plays <O\(\d,\d\)>$", term.text, re.MULTILINE)
    assert re.search(r"^result: (you win|draw|you lose)", term.text, re.MULTILINE)
    assert term.text.count("--- game over ---") == 1


def _args(policy: str, env: str, seat: int, seed: int) -> argparse.Namespace:
    return argparse.Namespace(policy=policy, env=env, seat=seat, temperature=0.0, constrained=True, seed=seed)


def _play(args, moves: str) -> tuple[int, str]:
    out = io.StringIO()
    status = run_play(args, inp=io.StringIO(moves), out=out)
    return status, out.getvalue()


@pytest.mark.parametrize("seat", [0, 1])
def test_kuhn_poker_never_shows_the_agents_card(tiny_path, seat):
    seed = 4
    deal = make("kuhn_poker").reset(seed).native().history()  # the same chance events as in play
    mine, theirs = "JQK"[deal[seat]], "JQK"[deal[1 - seat]]
    status, out = _play(_args(tiny_path, "kuhn_poker", seat, seed), "check\nbet\nbet\n")
    assert status == 0
    assert "'check' is not a legal move; legal moves: <PASS> <BET>" in out
    assert set(re.findall(r"card\W+(\w+)", out, re.IGNORECASE)) == {mine}  # the human's card only
    assert f"{deal[0]} {deal[1]}" not in out  # OpenSpiel's str(state): both cards, as numbers
    assert theirs not in re.sub(r"[^A-Z]", " ", out.split("--- your turn")[1]).split()
    assert re.search(r"^result: (you win|you lose) \(you [+-]\d", out, re.MULTILINE)
    again = _play(_args(tiny_path, "kuhn_poker", seat, seed), "check\nbet\nbet\n")
    assert again == (status, out)  # --seed fixes the deal and the agent's answers


def test_quit_end_of_input_and_a_bad_seat(tiny_path):
    status, out = _play(_args(tiny_path, "tic_tac_toe", 0, 0), "quit\n")
    assert status == 0 and "you quit" in out and "result:" not in out
    status, out = _play(_args(tiny_path, "tic_tac_toe", 0, 0), "")
    assert status == 0 and "end of input" in out and "result:" not in out
    with pytest.raises(ValueError, match="--seat must be 0..1"):
        run_play(_args(tiny_path, "tic_tac_toe", 2, 0))
