"""`mas eval`: a checkpoint (--policy) or a bot (--player) against fixed opponents on one env, or
against a whole suite of envs x opponents (--suite FILE.yaml); one table and, with --json, JSON."""
from __future__ import annotations

import json
from pathlib import Path

from mas.agents import bots
from mas.evaluation import suite as suites
from mas.evaluation.loading import load_policy, policy_folder


def run_eval(args) -> int:
    if args.policy and args.player:
        raise ValueError("give --policy (a checkpoint) or --player (a bot), not both")
    suite = (suites.load_suite(args.suite) if args.suite
             else suites.single_env_suite(args.env, args.opponents, args.games, args.seed))
    # The command line names the player; a suite file's player/policy is the default.
    policy = args.policy or (None if args.player else suite.policy)
    player = args.player or (None if args.policy else suite.player)
    if not policy and not player:
        raise ValueError("which side to evaluate: --policy (a checkpoint such as runs/NAME/final/POLICY) "
                         "or --player (a bot such as mcts:100)")
    if player:
        try:
            bots.check_spec(player)
        except ValueError as err:
            raise ValueError(f"--player: {err}") from None
        label, side = player, {"player": player}
        matches = suites.build(suite, player)
    else:
        option = "--policy" if args.policy else f"suite {args.suite}: policy"
        label = str(policy_folder(policy, option))
        side = {"policy": label}
        matches = suites.build(suite, lambda: load_policy(
            policy, temperature=args.temperature, constrained=args.constrained,
            max_new_tokens=args.max_new_tokens, threads=args.threads, option=option),
            policy_dir=policy_folder(policy, option))
        label += f" (constrained={matches[0].player.constrained}, temperature={args.temperature})"
    rows = suites.run(matches)
    where = f"suite {args.suite}" if args.suite else matches[0].env_id
    print(f"{next(iter(side))} {label} on {where}, seed {suite.seed}")
    print(suites.format_rows(rows))
    notes = suites.cfr_notes(matches)
    for env_id, note in notes.items():
        print(f"cfr on {env_id}: CFR average policy after {note['iterations']} iterations (pyspiel.CFRSolver), "
              f"exploitability {note['exploitability']:.4f}")
    if args.json_path:
        results = suites.results_json(rows)
        if args.suite:
            payload = {**side, "suite": str(args.suite), "seed": suite.seed, "envs": results}
        else:
            payload = {**side, "env": matches[0].env_id, "games_per_opponent": args.games, "seed": suite.seed,
                       "opponents": results[matches[0].env_id]}
        if notes:
            payload["cfr"] = notes
        Path(args.json_path).write_text(json.dumps(payload, indent=1))
    return 0
