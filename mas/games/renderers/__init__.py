"""How an OpenSpiel game looks to a seat (mas/games/renderers/base.py): the generic renderer and its
registry, and the hand-written renderers, registered by importing their modules here."""
from __future__ import annotations

from mas.games.renderers import board, cards  # noqa: F401  (register the hand-written renderers)
from mas.games.renderers.base import (ANSWER_INSTRUCTIONS, COMPACT_INSTRUCTIONS, Renderer, bracket, make_renderer,
                                      renderer)

__all__ = ["Renderer", "renderer", "make_renderer", "bracket", "ANSWER_INSTRUCTIONS", "COMPACT_INSTRUCTIONS"]
