"""`mas eval --benchmark NAME --data FILE --policy P [--samples k] [--topology FILE]`: generate answers
with a policy's backend, alone or inside a multi-agent workflow, then score them with the benchmark's
rules (mas/evaluation/reasoning/scoring.py). With a topology, the single-agent baseline of the same
backbone and sampling runs beside it in the same table."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from mas.agents.backends.base import GenerationRequest
from mas.agents.chat import PromptTokenizer
from mas.evaluation.loading import LoadedPolicy, load_policy
from mas.evaluation.reasoning.loaders import Item, load_benchmark
from mas.evaluation.reasoning.scoring import extract_answer, score_responses
from mas.games.arithmetic import Problem
from mas.games.workflow import WorkflowEnv, WorkflowSpec
from mas.orchestration.rollout import EpisodeSpec, RolloutEngine
from mas.seeding import SYSTEM_SAMPLE_STREAM, stable_seed

# Prompt templates per answer kind; `--prompts FILE.yaml` overrides them ({math: ..., choice: ..., system: ...}).
PROMPTS = {
    "math": "{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}.",
    "choice": "{question}\nThink step by step, then finish with 'Answer: X', where X is the letter of the correct option.",
}
INSTRUCTIONS = {"math": "Put the final answer within \\boxed{}.", "choice": "Finish with 'Answer: X' (the option's letter)."}
BATCH = 32


def _templates(path: str | None) -> dict[str, str]:
    templates = dict(PROMPTS, system="")
    if path:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        unknown = sorted(set(loaded) - set(templates))
        if unknown:
            raise ValueError(f"--prompts {path}: unknown key '{unknown[0]}'; allowed: math, choice, system")
        templates.update({k: str(v) for k, v in loaded.items()})
    return templates


# --- one agent --------------------------------------------------------------------------------
def generate_single(policy: LoadedPolicy, items: list[Item], templates: dict, samples: int, seed: int,
                    progress: bool = True) -> list[tuple[int, str]]:
    """`samples` responses per item from one agent, in batches, with a running accuracy."""
    from tqdm import tqdm

    prompts = PromptTokenizer(policy.tokenizer)
    responses: list[tuple[int, str]] = []
    correct = scored = 0
    bar = tqdm(total=len(items) * samples, desc="single agent", unit="resp", disable=not progress)
    for start in range(0, len(items), BATCH):
        chunk = items[start:start + BATCH]
        requests = []
        for item in chunk:
            messages = ([{"role": "system", "content": templates["system"]}] if templates["system"] else [])
            messages.append({"role": "user", "content": templates[item.kind].format(question=item.question)})
            requests += [GenerationRequest(prompts.first(policy.agent.with_role(messages)))] * samples
        generations = policy.handle.call("generate", requests, policy.agent.sampling, stable_seed(seed, start))
        pairs = [(item.index, g.text) for item, g in zip([i for i in chunk for _ in range(samples)], generations)]
        responses += pairs
        report = score_responses(chunk, pairs, workers=0)  # in-process: a running figure, no worker start-up
        correct += report.avg_at_k * len(chunk)
        scored += len(chunk)
        bar.set_postfix(accuracy=f"{correct / scored:.3f}", refresh=False)
        bar.update(len(pairs))
    bar.close()
    return responses


# --- a workflow -------------------------------------------------------------------------------
class BenchmarkTask:
    """A benchmark as a workflow task: problem i is item i; answers are free text, read with the
    benchmark's extraction; correctness is scored afterwards with the benchmark's rules."""

    name = "benchmark"

    def __init__(self, items: list[Item], kind: str):
        self.items, self.kind = items, kind
        self.instruction = INSTRUCTIONS[kind]

    def problem(self, seed: int) -> Problem:
        item = self.items[seed]
        return Problem(item.question, item.gold)

    def answers(self) -> list[str]:
        return []  # free text

    def parse(self, text: str):
        return extract_answer(text, self.kind)

    def check(self, value, problem: Problem) -> bool:
        return False  # not used for rewards here: the final texts are scored after the run


@dataclass
class Topology:
    spec: WorkflowSpec
    agents: list  # Agent per seat
    policies: dict[str, LoadedPolicy]


def load_topology(path: str, default_policy: str | None, args) -> Topology:
    """YAML: `workflow: {type, agents, max_rounds, ...}`, `agents: [{name, policy, role_prompt,
    sampling}]`, optional `policies: {name: {model: PATH_OR_NAME}}` (default: every agent on
    --policy)."""
    from mas.agents.backends.base import SamplingParams

    raw = yaml.safe_load(Path(path).read_text()) or {}
    unknown = sorted(set(raw) - {"workflow", "agents", "policies"})
    if unknown:
        raise ValueError(f"--topology {path}: unknown key '{unknown[0]}'; allowed: workflow, agents, policies")
    workflow = dict(raw.get("workflow") or {})
    workflow["agents"] = tuple(workflow.get("agents") or ())
    spec = WorkflowSpec(**workflow)
    models = {name: str((p or {}).get("model")) for name, p in (raw.get("policies") or {}).items()}
    if not models:
        if not default_policy:
            raise ValueError(f"--topology {path}: no policies section and no --policy for the agents")
        models = {"policy": default_policy}
    loaded = {name: load_policy(model, name=name, temperature=args.temperature, constrained=False,
                                max_new_tokens=args.max_new_tokens, threads=args.threads, option=f"--topology {path}")
              for name, model in models.items()}
    by_name = {}
    for entry in raw.get("agents") or []:
        policy = entry.get("policy", next(iter(loaded)))
        if policy not in loaded:
            raise ValueError(f"--topology {path}: agent '{entry.get('name')}' names policy '{policy}'; "
                             f"allowed: {', '.join(loaded)}")
        base = loaded[policy].agent
        sampling = replace(base.sampling, **{k: v for k, v in (entry.get("sampling") or {}).items()
                                              if k in ("temperature", "top_p", "top_k", "max_new_tokens")})
        by_name[entry["name"]] = replace(base, name=entry["name"], role_prompt=entry.get("role_prompt", ""),
                                         sampling=SamplingParams(**vars(sampling)))
    missing = [n for n in spec.seat_names() if n not in by_name]
    if missing:
        raise ValueError(f"--topology {path}: workflow seat '{missing[0]}' is not among the agents")
    return Topology(spec, [by_name[n] for n in spec.seat_names()], loaded)


def generate_topology(topology: Topology, items: list[Item], samples: int, seed: int) -> tuple[list[tuple[int, str]], float]:
    """The workflow's final answer text per item and sample (no answer: an empty response), and
    the mean number of turns per episode."""
    kinds = {item.kind for item in items}
    env = WorkflowEnv(topology.spec, BenchmarkTask(items, kinds.pop() if len(kinds) == 1 else "math"), id="benchmark")
    handles = {name: p.handle for name, p in topology.policies.items()}
    tokenizers = {name: p.tokenizer for name, p in topology.policies.items()}
    engine = RolloutEngine(env, handles, tokenizers)
    responses, turns = [], []
    for k in range(samples):
        specs = [EpisodeSpec(episode_id=k * len(items) + i, group_id=i, seed=i, players=list(topology.agents))
                 for i in range(len(items))]
        episodes, _ = engine.play(specs, seed=stable_seed(seed, SYSTEM_SAMPLE_STREAM, k))
        for item, ep in zip(items, episodes):
            responses.append((item.index, ep.info.get("final_text") or ""))
            turns.append(ep.info.get("turns", 0))
    return responses, sum(turns) / max(len(turns), 1)


# --- the command ------------------------------------------------------------------------------
def _row(name: str, report, seconds: float, extra: str = "") -> dict:
    return {"system": name, "report": report.to_json(), "avg_at_k": report.avg_at_k, "pass_at_k": report.pass_at_k,
            "no_answer": report.no_answer, "seconds": seconds, "note": extra}


def format_rows(rows: list[dict], samples: int) -> str:
    ks = sorted({int(k) for r in rows for k in r["pass_at_k"]})
    head = f"{'system':<28} {f'avg@{samples}':>8} " + " ".join(f"{f'pass@{k}':>8}" for k in ks) + f" {'no answer':>9} {'s':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = " ".join(f"{r['pass_at_k'].get(k, r['pass_at_k'].get(str(k), float('nan'))):>8.3f}" for k in ks)
        lines.append(f"{r['system']:<28} {r['avg_at_k']:>8.3f} {cells} {r['no_answer']:>9} {r['seconds']:>6.0f}")
    return "\n".join(lines)


def run_benchmark_eval(args) -> int:
    if not args.data:
        raise ValueError("--data: the benchmark file to evaluate on (JSONL, or CSV for gpqa)")
    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    if not args.policy and not args.topology:
        raise ValueError("--policy: the checkpoint or model to evaluate (or --topology with its own policies)")
    items = load_benchmark(args.benchmark, args.data, seed=args.seed, limit=args.limit)
    templates = _templates(args.prompts)
    rows, all_responses = [], {}
    if args.topology:
        topology = load_topology(args.topology, args.policy, args)
        t0 = time.perf_counter()
        responses, turns = generate_topology(topology, items, args.samples, args.seed)
        report = score_responses(items, responses)
        label = f"{topology.spec.type}: {' -> '.join(topology.spec.seat_names())}"
        rows.append(_row(label, report, time.perf_counter() - t0, f"{turns:.2f} turns per problem"))
        all_responses[label] = responses
        # the baseline: the first seat's backbone and sampling, alone, without its role prompt
        first = topology.agents[0]
        baseline = topology.policies[first.policy]
        baseline.agent = replace(first, name="single", role_prompt="")
    else:
        baseline = load_policy(args.policy, temperature=args.temperature, constrained=False,
                               max_new_tokens=args.max_new_tokens, threads=args.threads)
    t0 = time.perf_counter()
    responses = generate_single(baseline, items, templates, args.samples, args.seed)
    report = score_responses(items, responses)
    rows.insert(0, _row("single agent", report, time.perf_counter() - t0))
    all_responses["single agent"] = responses
    print(f"{args.benchmark} ({args.data}): {len(items)} items x {args.samples} samples, "
          f"temperature {args.temperature}, seed {args.seed}")
    print(format_rows(rows, args.samples))
    if args.responses_out:
        with open(args.responses_out, "w") as f:
            for system, pairs in all_responses.items():
                for index, text in pairs:
                    f.write(json.dumps({"system": system, "index": index, "response": text}) + "\n")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"benchmark": args.benchmark, "data": str(args.data),
                                                    "samples": args.samples, "seed": args.seed, "rows": rows}, indent=1))
    return 0


__all__ = ["run_benchmark_eval", "BenchmarkTask", "load_topology", "generate_single", "generate_topology"]
