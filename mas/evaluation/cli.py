"""`mas eval`: a checkpoint (--policy) or a bot (--player) against fixed opponents on one env, or
against a whole suite of envs x opponents (--suite FILE.yaml); one table and, with --json, JSON.
Rows marked exact (--exact, or `exact: true` in a suite) are evaluated over the whole game tree."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from mas.agents import bots
from mas.evaluation import suite as suites
from mas.evaluation.exact import EXACT_BOTS, MAX_NODES, format_report
from mas.evaluation.exact.command import exact_rows
from mas.evaluation.loading import load_policy, policy_folder


def run_eval(args) -> int:
    if args.policy and args.player:
        raise ValueError("give --policy (a checkpoint) or --player (a bot), not both")
    exact = bool(getattr(args, "exact", False))
    suite = (suites.load_suite(args.suite) if args.suite
             else suites.single_env_suite(args.env, args.opponents, args.games, args.seed, exact=exact))
    if exact:
        suite = replace(suite, entries=[replace(e, exact=True) for e in suite.entries])
    # The command line names the player; a suite file's player/policy is the default.
    policy = args.policy or (None if args.player else suite.policy)
    player = args.player or (None if args.policy else suite.player)
    if not policy and not player:
        raise ValueError("which side to evaluate: --policy (a checkpoint such as runs/NAME/final/POLICY) "
                         "or --player (a bot such as mcts:100)")
    sampled = [e for e in suite.entries if not e.exact]
    exact_entries = [e for e in suite.entries if e.exact]
    if player:
        if sampled or player not in EXACT_BOTS:  # exact rows also take the perfect player
            try:
                bots.check_spec(player)
            except ValueError as err:
                raise ValueError(f"--player: {err}") from None
        label, side = player, {"player": player}
    else:
        option = "--policy" if args.policy else f"suite {args.suite}: policy"
        label = str(policy_folder(policy, option))
        side = {"policy": label}
    loaded = []

    def load():
        if not loaded:
            loaded.append(load_policy(policy, temperature=args.temperature, constrained=args.constrained,
                                      max_new_tokens=args.max_new_tokens, threads=args.threads, option=option))
        return loaded[0]

    where = f"suite {args.suite}" if args.suite else "--env"
    payload = dict(side)
    rows, notes = [], {}
    if sampled:
        matches = suites.build(replace(suite, entries=sampled), player or load,
                               policy_dir=None if player else policy_folder(policy, option))
        rows = suites.run(matches)
        shown = label if player else f"{label} (constrained={matches[0].player.constrained}, temperature={args.temperature})"
        print(f"{next(iter(side))} {shown} on {f'suite {args.suite}' if args.suite else matches[0].env_id}, seed {suite.seed}")
        print(suites.format_rows(rows))
        notes = suites.cfr_notes(matches)
        for env_id, note in notes.items():
            print(f"cfr on {env_id}: CFR average policy after {note['iterations']} iterations (pyspiel.CFRSolver), "
                  f"exploitability {note['exploitability']:.4f}")
        results = suites.results_json(rows)
        if args.suite:
            payload.update({"suite": str(args.suite), "seed": suite.seed, "envs": results})
        else:
            payload.update({"env": matches[0].env_id, "games_per_opponent": args.games, "seed": suite.seed,
                            "opponents": results[matches[0].env_id]})
        if notes:
            payload["cfr"] = notes
    if exact_entries:
        max_states = int(getattr(args, "max_states", None) or MAX_NODES)
        reports = exact_rows(exact_entries, player or load, policy_dir=None if player else policy_folder(policy, option),
                             temperature=args.temperature or None, max_states=max_states, where=where)
        for report in reports:
            print(f"\nexact evaluation: {next(iter(side))} {label} on {report.env_id}")
            print(format_report(report))
        payload["exact"] = {r.env_id: r.to_json() for r in reports}
        if args.suite:
            payload.setdefault("suite", str(args.suite))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(payload, indent=1))
    return 0
