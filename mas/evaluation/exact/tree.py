"""The whole game tree of a small game, walked once: every chance event enumerated with its
probabilities, every decision point shown to the policies that will be asked about it.

Where the env names positions (`EnvState.position_key`: prompts that show the position alone),
histories reaching one position share one node, and the tree is a graph of positions: tic-tac-toe
with such prompts has 5,478 of them instead of 549,946 histories. `bottom_up` lists the nodes
children first, for one pass that evaluates the tree. The tree keeps no env states: at each
decision point every policy records what its distribution depends on (a prompt, an information
state) and answers later, all at once."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

TERMINAL, CHANCE, DECISION = 0, 1, 2
MAX_NODES = 1_000_000  # tic-tac-toe's full tree has 549,946


@dataclass
class GameTree:
    env_id: str
    num_seats: int
    kind: list[int] = field(default_factory=list)
    children: list[list[int]] = field(default_factory=list)
    seat: list[int] = field(default_factory=list)  # the seat to act (-1: not a decision)
    actions: list[list[str]] = field(default_factory=list)  # decision: the legal actions, in order
    chance: list[list[float]] = field(default_factory=list)  # chance: the outcome probabilities
    outcomes: list[tuple[str, ...]] = field(default_factory=list)  # terminal: win/draw/loss per seat
    payoffs: list[tuple[float, ...]] = field(default_factory=list)  # terminal: the game's returns
    info: list[str] = field(default_factory=list)  # decision: the seat's information state (pyspiel)
    action_ids: list[list[int]] = field(default_factory=list)  # decision: native ids of `actions`
    handles: dict[str, list] = field(default_factory=dict)  # per observer, its handle at each node
    bottom_up: list[int] = field(default_factory=list)  # every node after all of its children (the root last)
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.kind)

    def decisions(self) -> list[int]:
        return [i for i, k in enumerate(self.kind) if k == DECISION]


def build_tree(env, observers: list, *, max_nodes: int = MAX_NODES, progress: bool = False,
               merge_positions: bool = True) -> GameTree:
    """Walk every history of `env` from `env.reset_explicit_chance()`. Each observer's
    `observe(state, seat, node, previous)` is called at every decision point, `previous` being the
    same seat's last decision on the path as (node, action index) or None; it returns a handle
    kept in `tree.handles[observer.name]`. At a position reached again (same `position_key`) the
    walk reuses its node, observed once; `merge_positions=False` gives every history a node of its
    own. A one-line ValueError when the game cannot be enumerated or has more than `max_nodes`
    states."""
    start = time.perf_counter()
    root = env.reset_explicit_chance()
    tree = GameTree(env.id, env.num_seats, handles={o.name: [] for o in observers})
    native = root.native() is not None
    positions: dict[str, int] = {}
    limit_note = (" (each history is its own state" + (": env.history is true)" if env.history else ")"))

    def add(kind: int, seat: int = -1) -> int:
        if len(tree.kind) >= max_nodes:
            raise ValueError(f"exact evaluation: '{env.id}' has more than {max_nodes:,} states{limit_note}; "
                             "it is too large to enumerate (raise max_states to try anyway)")
        tree.kind.append(kind)
        tree.children.append([])
        tree.seat.append(seat)
        tree.actions.append([])
        tree.chance.append([])
        tree.outcomes.append(())
        tree.payoffs.append(())
        tree.info.append("")
        tree.action_ids.append([])
        for o in observers:
            tree.handles[o.name].append(None)
        if progress and len(tree.kind) % 100_000 == 0:
            print(f"  exact: {len(tree.kind):,} states walked ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
        return len(tree.kind) - 1

    def visit(state, previous: dict[int, tuple[int, int]]) -> int:
        key = state.position_key() if merge_positions else None
        if key is not None and key in positions:
            return positions[key]
        node = expand(state, previous)
        if key is not None:
            positions[key] = node
        tree.bottom_up.append(node)  # its walk has ended: its children are in already
        return node

    def expand(state, previous: dict[int, tuple[int, int]]) -> int:
        if state.is_terminal():
            node = add(TERMINAL)
            tree.outcomes[node] = tuple(state.outcomes())
            tree.payoffs[node] = tuple(float(x) for x in state.game_returns())
            return node
        outcomes = state.chance_outcomes()
        if outcomes:
            node = add(CHANCE)
            tree.chance[node] = [p for _, p in outcomes]
            for outcome, _ in outcomes:
                child = state.clone()
                child.apply_chance(outcome)
                tree.children[node].append(visit(child, previous))
            return node
        seats = state.current_seats()
        if len(seats) != 1:
            raise ValueError(f"exact evaluation walks games where one seat moves at a time; '{env.id}' has "
                             "simultaneous moves")
        seat = seats[0]
        legal = state.legal_actions(seat)
        if not legal:
            raise ValueError(f"exact evaluation needs a list of legal actions; '{env.id}' takes free-text answers")
        node = add(DECISION, seat)
        tree.actions[node] = legal
        if native:
            tree.info[node] = state.native().information_state_string(seat)
            ids = {state.action_text(a, seat): a for a in state.native().legal_actions(seat)}
            tree.action_ids[node] = [ids[a] for a in legal]
        for o in observers:
            tree.handles[o.name][node] = o.observe(state, seat, node, previous.get(seat))
        for index, action in enumerate(legal):
            child = state.clone()
            child.apply(seat, action)
            tree.children[node].append(visit(child, {**previous, seat: (node, index)}))
        return node

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        visit(root, {})
    finally:
        sys.setrecursionlimit(limit)
    tree.seconds = time.perf_counter() - start
    return tree
