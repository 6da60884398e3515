"""Exact evaluation of small games: a policy's value computed over the whole game tree, every chance
event and every action weighted by its probability, instead of estimated from sampled games.

    exact_evaluate(env, policy, opponent)  -> per seat: win, draw, loss, non_loss, payoff
    exact_report(env, policies, opponents) -> the table `mas eval --exact` prints

A policy is a bot spec with a defined distribution ("random", "cfr", "perfect"), a plain function
`(state, seat) -> {legal action: probability}`, a `Policy` (e.g. from `model_policies`), or, in
a checkpoint (a folder or a loaded one). "mcts:N" has no distribution to enumerate and is refused.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from mas.evaluation.exact.policies import (CFRPolicy, FunctionPolicy, ModelPolicy, PerfectPolicy, Policy,
                                           RandomPolicy, checkpoint_policies, model_policies)
from mas.evaluation.exact.tree import MAX_NODES, GameTree, build_tree
from mas.evaluation.exact.values import expected_outcomes, nash_conv

__all__ = ["EXACT_BOTS", "ExactEvaluation", "ExactReport", "report_metrics", "MAX_NODES", "Policy", "default_opponents", "exact_evaluate", "exact_report",
           "format_report", "make_policy", "model_policies"]

EXACT_BOTS = ("random", "cfr", "perfect")


def make_policy(spec: Any, env, *, max_states: int = MAX_NODES) -> Policy:
    """A `Policy` from a bot spec, a function, a `Policy`, or a checkpoint (a folder, a built-in
    model name, or a loaded `LoadedPolicy`: its sampling-temperature policy, with constrained
    answers); a one-line ValueError otherwise."""
    import os

    from mas.agents.models import is_builtin
    from mas.evaluation.loading import LoadedPolicy, load_policy

    if isinstance(spec, Policy):
        return spec
    if isinstance(spec, LoadedPolicy):
        return checkpoint_policies(spec, max_prompts=max_states)[0]
    if callable(spec):
        return FunctionPolicy(spec)
    spec = str(spec).strip()
    if spec == "random":
        return RandomPolicy()
    if spec == "cfr":
        return CFRPolicy(env)
    if spec == "perfect":
        return PerfectPolicy(env)
    if spec.startswith("mcts:"):
        raise ValueError(f"'{spec}' has no action distribution to enumerate; exact evaluation takes "
                         f"{', '.join(EXACT_BOTS)}, a checkpoint or a function")
    if os.path.isdir(spec) or is_builtin(spec) or spec.startswith("tiny-"):
        return checkpoint_policies(load_policy(spec, constrained=True, option="policy"), max_prompts=max_states)[0]
    raise ValueError(f"unknown exact policy '{spec}'; allowed: {', '.join(EXACT_BOTS)}, a checkpoint or a function")


def default_opponents(env) -> list[str]:
    """random and perfect in perfect-information games; random and cfr in Kuhn and Leduc."""
    if env.perfect_information:
        return ["random", "perfect"]
    try:
        from mas.agents import cfr

        cfr.check_game(env.game)
        return ["random", "cfr"]
    except (ValueError, AttributeError, TypeError):
        return ["random"]


def _walk(env, policies: list[Policy], max_states: int, progress: bool) -> GameTree:
    observers = list({id(p.observer): p.observer for p in policies}.values())
    names = [o.name for o in observers]
    if len(set(names)) != len(names):
        raise ValueError(f"exact evaluation: two policies share the name '{sorted(n for n in names if names.count(n) > 1)[0]}'")
    tree = build_tree(env, observers, max_nodes=max_states, progress=progress)
    for observer in observers:
        observer.resolve(tree)
    return tree


def exact_evaluate(env, policy: Any, opponent: Any = "random", *, max_states: int = MAX_NODES) -> dict:
    """`policy` on each seat in turn, `opponent` on the others, evaluated exactly:
    {seat: {win, draw, loss, non_loss, payoff}} for the policy's seat, and "mean" over seats."""
    me = make_policy(policy, env, max_states=max_states)
    them = me if isinstance(opponent, str) and opponent.strip() == me.name else make_policy(opponent, env,
                                                                                             max_states=max_states)
    if them is not me and them.name == me.name:  # e.g. the same checkpoint folder name twice
        them.name = f"{them.name} (opponent)"
        if isinstance(them, ModelPolicy):
            them.source.name = them.name
    tree = _walk(env, [me, them], max_states, progress=False)
    return _pairing(tree, me, them, optimal=None)


def _pairing(tree: GameTree, me: Policy, them: Policy, optimal) -> dict:
    out: dict = {}
    for seat in range(tree.num_seats):
        players = [them] * tree.num_seats
        players[seat] = me
        out[seat] = expected_outcomes(tree, players, optimal=optimal, measured=seat)[seat]
    keys = out[0].keys()
    out["mean"] = {k: sum(out[s][k] for s in range(tree.num_seats)) / tree.num_seats for k in keys}
    return out


@dataclass
class ExactReport:
    env_id: str
    perfect_information: bool
    rows: dict[str, dict[str, dict]]  # policy -> opponent -> {seat | "mean": figures}
    nash_conv: dict[str, float] = field(default_factory=dict)  # policy -> NashConv (imperfect information)
    states: int = 0
    walk_seconds: float = 0.0
    score_seconds: float = 0.0
    seconds: float = 0.0
    prompts: dict[str, int] = field(default_factory=dict)  # model -> distinct prompts scored

    def to_json(self) -> dict:
        rows = {p: {o: {str(k): v for k, v in r.items()} for o, r in opp.items()} for p, opp in self.rows.items()}
        # no timings: the same evaluation writes the same JSON
        out = {"env": self.env_id, "perfect_information": self.perfect_information, "policies": rows,
               "states": self.states, "prompts": self.prompts}
        if self.nash_conv:
            out["nash_conv"] = self.nash_conv
            out["exploitability"] = {p: v / 2 for p, v in self.nash_conv.items()}
        return out


class ExactEvaluation:
    """Policies and opponents on one walked tree. `report()` computes the figures; after a model's
    weights change, `rescore(handle)` scores its prompts again (the tree and prompts are kept)."""

    def __init__(self, env, policies: list[Any], opponents: list[str] | None = None, *,
                 max_states: int = MAX_NODES, progress: bool = False):
        self.env, self.progress = env, progress
        self.mine = [make_policy(p, env) for p in policies]
        by_name = {p.name: p for p in self.mine}  # a bot named on both sides is one policy
        self.theirs = [by_name.get(str(o).strip()) or make_policy(o, env) for o in (opponents or default_opponents(env))]
        self.solver = next((p for p in self.theirs + self.mine if isinstance(p, PerfectPolicy)), None)
        extra = []
        if env.perfect_information and self.solver is None:
            self.solver = PerfectPolicy(env)  # for the optimal-move mass only
            extra.append(self.solver)
        self.tree = _walk(env, self.mine + self.theirs + extra, max_states, progress)
        if progress:
            print(f"  exact: {len(self.tree):,} states walked in {self.tree.seconds:.1f} s", file=sys.stderr)
        self.sources = list({id(p.observer): p.observer for p in self.mine if isinstance(p, ModelPolicy)}.values())

    def rescore(self, handle=None) -> None:
        """Score the models' prompts again (with `handle`: served by that worker from now on)."""
        for source in self.sources:
            if handle is not None:
                source.handle = handle
            source.resolve(self.tree)

    def report(self) -> ExactReport:
        start = time.perf_counter()
        rows: dict[str, dict[str, dict]] = {}
        for me in self.mine:
            rows[me.name] = {}
            for k, them in enumerate(self.theirs):
                # the optimal-move mass where the policy goes against the first opponent
                optimal = self.solver.best if self.solver is not None and k == 0 else None
                rows[me.name][them.name] = _pairing(self.tree, me, them, optimal)
        env = self.env
        report = ExactReport(env.id, bool(env.perfect_information), rows, states=len(self.tree))
        if not env.perfect_information and env.game is not None and env.num_seats == 2:
            report.nash_conv = {me.name: nash_conv(env, self.tree, me) for me in self.mine}
        report.prompts = {o.name: len(o.entries) for o in self.sources}
        report.score_seconds = sum(o.seconds for o in self.sources)
        report.walk_seconds = self.tree.seconds
        report.seconds = report.walk_seconds + report.score_seconds + time.perf_counter() - start
        return report


def exact_report(env, policies: list[Any], opponents: list[str] | None = None, *,
                 max_states: int = MAX_NODES, progress: bool = False) -> ExactReport:
    """Every policy against every opponent on every seat, from one walk of the tree. Perfect-
    information games add each policy's mass on optimal moves against the first opponent
    (random by default); two-player games of imperfect information add NashConv."""
    return ExactEvaluation(env, policies, opponents, max_states=max_states, progress=progress).report()


def report_metrics(report: ExactReport, prefix: str = "exact") -> dict[str, float]:
    """Flat metrics for TensorBoard: `exact/<policy kind>/<opponent>/<figure>` (kind: sampled or
    greedy), the mean over seats and each seat, and `exact/<kind>/nash_conv`."""
    out: dict[str, float] = {}
    for k, (policy, opponents) in enumerate(report.rows.items()):
        kind = "greedy" if policy.endswith("(greedy)") else "sampled"
        keys = ("non_loss", "win", "loss", "optimal_mass") if report.perfect_information else ("payoff",)
        for opponent, r in opponents.items():
            for where, figures in r.items():
                tag = "mean" if where == "mean" else f"seat{where}"
                for key in keys:
                    if key in figures:
                        out[f"{prefix}/{kind}/{opponent}/{tag}/{key}"] = figures[key]
        if policy in report.nash_conv:
            out[f"{prefix}/{kind}/nash_conv"] = report.nash_conv[policy]
            out[f"{prefix}/{kind}/exploitability"] = report.nash_conv[policy] / 2
    return out


def format_report(report: ExactReport) -> str:
    """One row per policy x opponent: per seat and mean, non-loss (win/draw/loss) in perfect-
    information games or payoffs otherwise; the optimal-move mass; NashConv."""
    seats = [k for k in next(iter(next(iter(report.rows.values())).values())) if k != "mean"]
    pw = max([len("policy")] + [len(p) for p in report.rows])
    ow = max([len("opponent")] + [len(o) for r in report.rows.values() for o in r])
    lines = []
    if report.perfect_information:
        cells = [f"seat {s} non-loss (win/draw/loss)" for s in seats] + ["mean non-loss", "optimal mass"]
        lines.append(f"{'policy':<{pw}}  {'opponent':<{ow}}  " + "  ".join(f"{c:>28}" if c.startswith("seat") else f"{c:>13}" for c in cells))
        for p, opp in report.rows.items():
            for o, r in opp.items():
                parts = [f"{r[s]['non_loss']:.4f} ({r[s]['win']:.3f}/{r[s]['draw']:.3f}/{r[s]['loss']:.3f})" for s in seats]
                mass = r["mean"].get("optimal_mass")
                lines.append(f"{p:<{pw}}  {o:<{ow}}  " + "  ".join(f"{c:>28}" for c in parts)
                             + f"  {r['mean']['non_loss']:>13.4f}  " + (f"{mass:>13.4f}" if mass is not None else f"{'':>13}"))
    else:
        cells = [f"seat {s} payoff" for s in seats] + ["mean payoff"]
        lines.append(f"{'policy':<{pw}}  {'opponent':<{ow}}  " + "  ".join(f"{c:>13}" for c in cells))
        for p, opp in report.rows.items():
            for o, r in opp.items():
                lines.append(f"{p:<{pw}}  {o:<{ow}}  " + "  ".join(f"{r[s]['payoff']:>+13.4f}" for s in seats)
                             + f"  {r['mean']['payoff']:>+13.4f}")
    lines.insert(1, "-" * len(lines[0]))
    for p, value in report.nash_conv.items():
        lines.append(f"{p}: NashConv {value:.4f}, exploitability {value / 2:.4f}")
    lines.append(f"{report.states:,} states" + "".join(f", {n:,} prompts for {m}" for m, n in report.prompts.items())
                 + f"; walk {report.walk_seconds:.1f} s, model {report.score_seconds:.1f} s, total {report.seconds:.1f} s")
    return "\n".join(lines)
