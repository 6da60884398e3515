"""Exact figures from a walked game tree: outcome probabilities and expected payoffs of a pairing
of policies, the mass a policy puts on optimal moves where it goes, and NashConv."""
from __future__ import annotations

from mas.evaluation.exact.policies import Policy
from mas.evaluation.exact.tree import CHANCE, DECISION, GameTree

DIST_TOL = 1e-4  # a policy's probabilities must sum to 1 within this
SAME_INFO_TOL = 1e-6  # two decision points of one information state must get the same distribution


def expected_outcomes(tree: GameTree, players: list[Policy], *, optimal: dict[int, list[int]] | None = None,
                      measured: int | None = None) -> dict:
    """Each seat's probability of a win, draw and loss and its expected payoff when seat s plays
    `players[s]`: {seat: {win, draw, loss, non_loss, payoff}}. With `optimal` (node -> indices of
    the optimal moves) and `measured` (a seat), also the probability mass `players[measured]` puts
    on optimal moves, averaged over its decision points weighted by how often each is reached:
    E[sum of the masses over a game] / E[number of its decisions]."""
    n = tree.num_seats
    width = 4 * n + 2  # win, draw, loss, payoff per seat; optimal mass sum and decision count
    values: list[list[float]] = [None] * len(tree)  # type: ignore[list-item]
    for node in tree.bottom_up:
        kind, kids = tree.kind[node], tree.children[node]
        if kind == DECISION:
            seat = tree.seat[node]
            probs = players[seat].probs(tree, node)
            if len(probs) != len(kids) or abs(sum(probs) - 1.0) > DIST_TOL:
                raise ValueError(f"policy '{players[seat].name}' gave no distribution over the {len(kids)} legal "
                                 f"actions at a decision point: {probs}")
            values[node] = _mix([values[c] for c in kids], probs, width)
            if seat == measured and optimal is not None:
                values[node][-2] += sum(probs[i] for i in optimal[node])
                values[node][-1] += 1.0
        elif kind == CHANCE:
            values[node] = _mix([values[c] for c in kids], tree.chance[node], width)
        else:
            row = [0.0] * width
            for s in range(n):
                outcome = tree.outcomes[node][s]
                row[4 * s + {"win": 0, "draw": 1}.get(outcome, 2)] = 1.0  # "invalid" is a loss
                row[4 * s + 3] = tree.payoffs[node][s]
            values[node] = row
    root = values[0]
    out: dict = {s: {"win": root[4 * s], "draw": root[4 * s + 1], "loss": root[4 * s + 2],
                     "non_loss": root[4 * s] + root[4 * s + 1], "payoff": root[4 * s + 3]} for s in range(n)}
    if optimal is not None and measured is not None:
        out[measured]["optimal_mass"] = root[-2] / root[-1] if root[-1] > 0 else float("nan")
    return out


def _mix(rows: list[list[float]], weights: list[float], width: int) -> list[float]:
    out = [0.0] * width
    for row, w in zip(rows, weights):
        if w:
            for k in range(width):
                out[k] += w * row[k]
    return out


def tabular(tree: GameTree, policy: Policy) -> dict[str, list[tuple[int, float]]]:
    """The policy as an OpenSpiel table: information state -> [(action id, probability)], read at
    every decision point of every seat. Decision points of one information state must agree:
    what a seat is shown may not depend on what it cannot see."""
    table: dict[str, list[tuple[int, float]]] = {}
    for node in tree.decisions():
        row = list(zip(tree.action_ids[node], policy.probs(tree, node)))
        seen = table.setdefault(tree.info[node], row)
        if seen is not row and max(abs(p - q) for (_, p), (_, q) in zip(seen, row)) > SAME_INFO_TOL:
            raise ValueError(f"policy '{policy.name}' plays differently at two states of the information state "
                             f"'{tree.info[node]}': its prompt shows what the seat cannot know")
    return table


def nash_conv(env, tree: GameTree, policy: Policy) -> float:
    """OpenSpiel's NashConv of `policy` played by every seat: the sum over seats of what a best
    response gains against it (exploitability is NashConv / number of seats)."""
    import pyspiel

    if env.game is None:
        raise ValueError(f"NashConv needs an OpenSpiel game; env '{env.id}' has none")
    return float(pyspiel.nash_conv(env.game, tabular(tree, policy)))
