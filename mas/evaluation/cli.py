"""`mas eval`: a checkpoint (or any model folder) against fixed opponents, table and JSON."""
from __future__ import annotations

import json
from pathlib import Path

from mas.agents import bots
from mas.evaluation.games import format_table, play_matches
from mas.evaluation.loading import load_policy
from mas.games import make as make_env
from mas.orchestration.rollout import RolloutEngine


def run_eval(args) -> int:
    if not args.policy:
        raise ValueError("--policy: which checkpoint to evaluate (a folder such as runs/NAME/final/POLICY)")
    env = make_env(args.env)
    opponents = [o.strip() for o in args.opponents.split(",") if o.strip()]
    for spec in opponents:
        bots.check_spec(spec)
    if args.games <= 0:
        raise ValueError(f"--games must be > 0, got {args.games}")
    loaded = load_policy(args.policy, temperature=args.temperature, constrained=args.constrained,
                         max_new_tokens=args.max_new_tokens, threads=args.threads)
    engine = RolloutEngine(env, *loaded.engine_parts())
    results = {}
    for i, spec in enumerate(opponents):
        results[spec], _ = play_matches(engine, loaded.agent, bots.make(spec, env), env.num_seats, args.games,
                                        args.seed + i)
    print(f"{loaded.path} on {env.id} (constrained={loaded.agent.constrained}, temperature={args.temperature})")
    print(format_table({"policy": results}))
    if args.json_path:
        payload = {"policy": str(loaded.path), "env": env.id, "games_per_opponent": args.games,
                   "opponents": {spec: r.to_json() for spec, r in results.items()}}
        Path(args.json_path).write_text(json.dumps(payload, indent=1))
    return 0
