"""`mas eval`: a checkpoint (or any model folder) against fixed opponents, table and JSON."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from mas.agents import bots
from mas.agents.agent import Agent
from mas.agents.backends.base import SamplingParams
from mas.agents.models import load_tokenizer, resolve
from mas.evaluation.games import format_table, play_matches
from mas.games import make as make_env
from mas.orchestration.handles import LocalHandle
from mas.orchestration.rollout import RolloutEngine
from mas.orchestration.workers import PolicyWorker, WorkerSpec


def _run_config_sampling(policy_dir: Path) -> dict:
    """The sampling settings the checkpoint was trained with, when it sits in a mas run folder."""
    for parent in (policy_dir.parent.parent, policy_dir.parent):
        cfg_file = parent / "config.yaml"
        if cfg_file.is_file():
            from omegaconf import OmegaConf

            cfg = OmegaConf.load(cfg_file)
            for agent in cfg.get("agents", []):
                if agent.get("policy") == policy_dir.name:
                    return dict(agent.get("sampling", {}))
    return {}


def run_eval(args) -> int:
    path = args.policy
    if not os.path.isdir(path):
        if path.startswith("tiny-"):
            path = resolve(path)
        else:
            raise ValueError(f"--policy: '{args.policy}' is not a folder (a checkpoint such as runs/NAME/final/POLICY)")
    policy_dir = Path(path).resolve()
    if not (policy_dir / "config.json").is_file():
        subdirs = [d for d in policy_dir.iterdir() if (d / "config.json").is_file()]
        if len(subdirs) == 1:  # a step folder with one policy in it
            policy_dir = subdirs[0]
        else:
            raise ValueError(f"--policy: '{args.policy}' holds no Hugging Face model (config.json)")
    env = make_env(args.env)
    opponents = [o.strip() for o in args.opponents.split(",") if o.strip()]
    for spec in opponents:
        bots.check_spec(spec)
    if args.games <= 0:
        raise ValueError(f"--games must be > 0, got {args.games}")
    trained = _run_config_sampling(policy_dir)
    constrained = args.constrained if args.constrained is not None else bool(trained.get("constrained", False))
    max_new = args.max_new_tokens or int(trained.get("max_new_tokens", 32))
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    worker = PolicyWorker(WorkerSpec(policy="eval", model_path=str(policy_dir), trainable=False,
                                     threads=args.threads or os.cpu_count() or 1))
    agent = Agent(name="eval", policy="eval", sampling=SamplingParams(temperature=args.temperature,
                  max_new_tokens=max_new), constrained=constrained)
    engine = RolloutEngine(env, {"eval": LocalHandle(worker)}, {"eval": load_tokenizer(str(policy_dir))})
    results = {}
    for i, spec in enumerate(opponents):
        results[spec], _ = play_matches(engine, agent, bots.make(spec, env), env.num_seats, args.games, args.seed + i)
    print(f"{policy_dir} on {env.id} (constrained={constrained}, temperature={args.temperature})")
    print(format_table({"policy": results}))
    if args.json_path:
        payload = {"policy": str(policy_dir), "env": env.id, "games_per_opponent": args.games,
                   "opponents": {spec: r.to_json() for spec, r in results.items()}}
        Path(args.json_path).write_text(json.dumps(payload, indent=1))
    return 0
