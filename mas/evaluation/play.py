"""`mas play`: a human against a checkpoint in the terminal."""
from __future__ import annotations


def run_play(args) -> int:
    raise ValueError("mas play is being written (issue 5)")
