"""The config schema and its parsing: YAML -> typed config (OmegaConf structured configs), with
unknown keys, wrong types and malformed overrides refused. The checks that need more than types
(registered names, references between sections, ranges) live in `mas.validation`, whose
`load_config` is what callers use.

Every user mistake becomes a `ConfigError` with one line naming the file, the key and what is allowed;
the CLI prints it and exits with status 2. docs/config.md documents every key."""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional

import yaml
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A mistake in a config file or override, described in one line."""


@dataclass
class RunSection:
    name: str = "run"
    dir: Optional[str] = None  # default: runs/<name> under the working directory
    seed: int = 0
    save_every: int = 5  # iterations between committed checkpoints (the last one is always saved)
    keep_last: int = 0  # committed steps to keep; 0 keeps all
    max_restarts: int = 3  # worker deaths survived per run (restart from the last checkpoint, replay)


@dataclass
class RaySection:
    enabled: bool = True  # false: every worker runs in-process (no Ray needed)
    address: Optional[str] = None  # join an existing cluster; null starts a local one on 127.0.0.1
    dashboard: bool = False
    num_cpus: Optional[int] = None  # CPUs the local instance declares (default: the machine's)
    num_gpus: Optional[float] = None  # GPUs the local instance declares (may exceed real ones in tests)


@dataclass
class ResourcesSection:
    num_cpus: float = 1.0  # CPU share of the worker's Ray bundle
    num_gpus: float = 0.0
    threads: int = 1  # torch threads inside the worker


@dataclass
class OptimizerSection:
    lr: float = 1e-3
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    schedule: str = "constant"  # constant | linear | cosine: the lr over the run's iterations
    schedule_end: float = 0.1  # linear / cosine: the fraction of lr reached at the last iteration
    warmup_iterations: int = 0  # iterations of linear warmup before the schedule


@dataclass
class LoraSection:
    r: int = 8  # adapter rank
    alpha: float = 16.0  # scale alpha / r
    target_modules: List[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    dropout: float = 0.0


@dataclass
class PolicySection:
    model: str = "tiny-xs"  # a built-in name (`mas models`), a Hugging Face folder, or a hub id
    backend: str = "hf"
    seed: int = 0  # initialisation seed of built-in tiny models
    dtype: str = "float32"
    device: str = "cpu"
    trainable: bool = True
    max_batch_size: int = 256  # prompts per forward pass in generation
    strategy: str = "torch"  # optimisation: torch | deepspeed (extra)
    zero_stage: int = 2  # DeepSpeed ZeRO stage (1 or 2) when strategy is deepspeed
    lora: Optional[LoraSection] = None  # train LoRA adapters (peft) instead of all weights
    attn_implementation: str = "sdpa"  # sdpa | eager | flash_attention_2 (transformers' names)
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    resources: ResourcesSection = field(default_factory=ResourcesSection)


@dataclass
class SamplingSection:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 32
    constrained: bool = False  # answers restricted to `<answer>LEGAL_ACTION</answer>`


@dataclass
class OptimizerOverrideSection:
    """Per-agent optimizer settings; only for an agent that has its policy to itself."""
    lr: Optional[float] = None
    betas: Optional[List[float]] = None
    eps: Optional[float] = None
    weight_decay: Optional[float] = None
    grad_clip: Optional[float] = None


@dataclass
class AgentSection:
    name: str = MISSING
    policy: str = MISSING
    role_prompt: str = ""
    group: Optional[str] = None  # functional group (shared baselines); default: the agent's own name
    sampling: SamplingSection = field(default_factory=SamplingSection)
    optimizer: Optional[OptimizerOverrideSection] = None


@dataclass
class WorkflowSection:
    type: str = "loop"  # chain | loop | debate | router
    agents: List[str] = field(default_factory=list)  # seats: chain order, loop [solver, verifier], ...
    max_rounds: int = 2
    aggregator: Optional[str] = None  # debate: the agent that gives the final answer
    router: Optional[str] = None  # router: the agent that picks who answers
    correct_reward: float = 1.0
    invalid_penalty: float = 0.1


@dataclass
class TaskSection:
    name: str = "arithmetic"
    max_value: int = 20  # answers and intermediate counts lie in 0..max_value
    steps: int = 1  # operations per problem
    malformed_answers: int = 0  # unparseable answers ("?", ...) added to a constrained solver's choices


@dataclass
class AdversarialSection:
    attackers: List[str] = field(default_factory=list)  # attacker agents (they write first)
    defenders: List[str] = field(default_factory=list)  # defender agents in topology order
    topology: str = "chain"  # chain | tree | complete
    injection: str = "task"  # task | between | user
    attack_rate: float = 1.0  # share of episodes attacked (the rest measure clean accuracy)
    weights: Dict[str, float] = field(default_factory=lambda: {"task": 1.0, "safety": 1.0, "format": 0.2})
    schedule: Dict[str, Any] = field(default_factory=dict)  # {weight: [[iteration, value], ...]}


@dataclass
class EnvSection:
    name: str = "tic_tac_toe"  # a registered env (`mas.games.available_envs()`)
    game: Optional[str] = None  # for name=openspiel: the pyspiel game string
    params: Optional[Dict[str, Any]] = None  # pyspiel game parameters, e.g. {rows: 6, columns: 6}
    id: Optional[str] = None  # env id written on turns; default: the name (or the game)
    rewards: str = "mars"  # mars | raw
    format_reward: float = 0.05
    invalid_penalty: float = 10.0
    draw_reward: float = 0.1
    max_turns: int = 50
    prompt: str = "full"  # full (MARS-style rules) | compact (one line, for tiny models)
    history: bool = True  # false: each turn is a fresh chat (system + current state)
    seats: Optional[List[str]] = None  # agent per seat; default: one agent plays every seat
    workflow: Optional[WorkflowSection] = None  # for name=workflow
    task: Optional[TaskSection] = None  # for name=workflow (default: arithmetic)
    # several games at once: [{name: tic_tac_toe, share: 0.5}, {name: kuhn_poker, share: 0.5, ...}];
    # each entry's other keys override the env keys above for that game
    mixture: Optional[List[Dict[str, Any]]] = None
    adversarial: Optional[AdversarialSection] = None  # for name=adversarial


@dataclass
class SchedulingSection:
    strategy: str = "split"  # split: own bundles per policy | colocate: policies share GPU bundles
    offload: bool = True  # colocate: idle models leave the GPU between phases


@dataclass
class PoolSection:
    sample: str = "latest"  # latest | uniform | prioritized (by the learner's score against each)
    size: int = 5  # newest members kept (the initial weights count as one)


@dataclass
class VadeSection:
    decay: float = 0.9  # a task seen again keeps this share of its old evidence
    relax: float = 0.99  # every iteration, every posterior moves back toward the prior by this factor
    prior: float = 1.0  # Beta(prior, prior) before a task is seen


@dataclass
class RolloutSection:
    episodes: int = 64  # episodes per iteration
    group_size: int = 1  # episodes per group sharing a seed (same deal)
    opponents: Dict[str, float] = field(default_factory=dict)  # bot spec -> share of episodes
    pool: PoolSection = field(default_factory=PoolSection)  # for the `pool` opponent
    tasks: int = 0  # a fixed pool of this many tasks (seeds); 0 = a fresh seed for every group
    task_sampler: str = "uniform"  # uniform | vade: which pool tasks each iteration trains on
    vade: VadeSection = field(default_factory=VadeSection)
    opening_moves: int = 0  # self-play groups start after this many uniformly random moves
    opening_share: float = 1.0  # the share of self-play groups that start so


@dataclass
class LossSection:
    ratio: str = "token"  # token (PPO) | sequence (GSPO)
    clip_low: Optional[float] = None  # default 0.2 (token) or 3e-4 (sequence)
    clip_high: Optional[float] = None  # default 0.2 (token) or 4e-4 (sequence)
    dual_clip: Optional[float] = None
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    entropy_coef: float = 0.0  # bonus on the per-token entropy of the sampling distribution
    agg: str = "token-mean"


@dataclass
class SequentialSection:
    steps_per_pool: int = 1  # optimizer steps on each pool
    clip_factor: Optional[float] = None  # clip the factor P to [1 - c, 1 + c]; null = no clip
    ratio_base: str = "record"  # record (log-probs before the pool's steps) | behaviour
    order: Any = "reverse"  # happo: reverse | forward | random | [agent, ...]


@dataclass
class TrainingSection:
    iterations: int = 20
    estimator: str = "mars"
    estimator_args: Dict[str, Any] = field(default_factory=dict)
    loss: LossSection = field(default_factory=LossSection)
    update: str = "joint"  # joint (every policy on all its rows) | seeupo | happo (sequential)
    # which agent groups learn when: simultaneous, or alternating (k iterations each group in turn)
    schedule: str = "simultaneous"
    alternate_every: int = 1
    sequential: SequentialSection = field(default_factory=SequentialSection)
    ppo_epochs: int = 1
    mini_batches: int = 1  # optimizer steps per epoch
    micro_batch_tokens: int = 16384
    agent_grad_norm_every: int = 1  # updates between per-agent gradient norms (0 = never)


@dataclass
class EvalSection:
    every: int = 5  # iterations between evaluations; 0 = never during training
    games: int = 100  # per opponent, split evenly across seats
    opponents: List[str] = field(default_factory=lambda: ["random"])
    temperature: float = 0.0  # 0 = greedy
    final_games: int = 0  # after training: a larger evaluation of the final checkpoint (0 = off)
    final_opponents: List[str] = field(default_factory=list)
    compare_initial: bool = False  # also evaluate the untrained model and the random bot
    tasks: str = "fresh"  # workflows: fresh (unseen problems) | pool (the rollout.tasks pool, in turn)
    exact: bool = False  # small games: also evaluate the learner exactly over the whole game tree
    exact_opponents: List[str] = field(default_factory=list)  # [] = random + perfect, or random + cfr
    exact_max_states: int = 1_000_000  # refuse (at start) a game with more states or distinct prompts


@dataclass
class Config:
    run: RunSection = field(default_factory=RunSection)
    ray: RaySection = field(default_factory=RaySection)
    scheduling: SchedulingSection = field(default_factory=SchedulingSection)
    env: EnvSection = field(default_factory=EnvSection)
    policies: Dict[str, PolicySection] = field(default_factory=dict)
    agents: List[AgentSection] = field(default_factory=list)
    rollout: RolloutSection = field(default_factory=RolloutSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    eval: EvalSection = field(default_factory=EvalSection)
    resume: Optional[str] = None  # a run folder to continue from its newest committed step


# --- loading ----------------------------------------------------------------------------------

# The dataclass behind each key path, for "allowed:" lists in error messages.
_SECTION_TYPES = {
    "run": RunSection, "ray": RaySection, "env": EnvSection, "rollout": RolloutSection,
    "training": TrainingSection, "eval": EvalSection, "loss": LossSection, "policies": PolicySection,
    "agents": AgentSection, "optimizer": OptimizerSection, "resources": ResourcesSection,
    "sampling": SamplingSection, "scheduling": SchedulingSection, "workflow": WorkflowSection,
    "task": TaskSection, "sequential": SequentialSection, "pool": PoolSection, "adversarial": AdversarialSection,
}


def _allowed_keys(path: list[str]) -> list[str]:
    """Field names of the section at `path` (list indices and policy names skipped)."""
    section = Config
    for i, part in enumerate(path):
        if part == "optimizer" and "agents" in path[:i]:
            section = OptimizerOverrideSection
        elif part in _SECTION_TYPES:
            section = _SECTION_TYPES[part]
    return [f.name for f in fields(section)]


def _explain(err: OmegaConfBaseException, source: str) -> ConfigError:
    key = getattr(err, "full_key", None) or ""
    msg = str(err).splitlines()[0]
    unknown = re.search(r"Key '([^']+)' (?:not in|is not in struct)", msg) or (
        re.search(r"Key '([^']+)'", msg) if "struct" in msg else None
    )
    if unknown:
        name = unknown.group(1)
        path = [p for p in re.split(r"[.\[\]]", key) if p]
        if path and path[-1] == name:
            path = path[:-1]
        allowed = _allowed_keys(path)
        hint = difflib.get_close_matches(name, allowed, n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        where = key or name
        return ConfigError(f"{source}: unknown key '{where}'{suggestion}; allowed: {', '.join(allowed)}")
    if "Missing mandatory value" in msg:
        return ConfigError(f"{source}: {key}: a value is required here")
    return ConfigError(f"{source}: {key + ': ' if key else ''}{msg}")


def _check_list_indices(cfg, key: str) -> None:
    """`agents.3.name=x` on a one-agent list: say so instead of a type error."""
    node = cfg
    parts = key.split(".")
    for i, part in enumerate(parts):
        if OmegaConf.is_list(node) and part.isdigit() and int(part) >= len(node):
            where = ".".join(parts[:i])
            raise ConfigError(f"command line: {key}: {where} has {len(node)} item(s); indices from 0 to {len(node) - 1}")
        try:
            node = node[int(part)] if OmegaConf.is_list(node) and part.isdigit() else node.get(part) if OmegaConf.is_dict(node) else None
        except Exception:
            return
        if node is None:
            return


def _normalize_shorthands(raw: dict) -> dict:
    # `ray: false` / `ray: true` are accepted as shorthands for `ray: {enabled: ...}`.
    if isinstance(raw.get("ray"), bool):
        raw["ray"] = {"enabled": raw["ray"]}
    return raw


def parse_config(path: str | None, overrides: list[str] | None = None) -> Config:
    """Load, merge overrides (`a.b=c`) and type-check; raises ConfigError. Not yet validated:
    `mas.validation.load_config` does both."""
    schema = OmegaConf.structured(Config)
    layers = []
    if path is not None:
        if not os.path.isfile(path):
            raise ConfigError(f"config file '{path}' not found")
        try:
            raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
        except Exception as err:  # yaml syntax errors come from several libraries
            raise ConfigError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        layers.append((path, OmegaConf.create(_normalize_shorthands(raw))))
    merged = schema
    for source, layer in layers:
        try:
            merged = OmegaConf.merge(merged, layer)
        except OmegaConfBaseException as err:
            raise _explain(err, source) from None
    for override in overrides or []:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"command line: override '{override}' must look like key=value")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            raise ConfigError(f"command line: {key}: cannot read the value '{text}'") from None
        if key == "ray" and isinstance(value, bool):
            key, value = "ray.enabled", value
        _check_list_indices(merged, key)
        try:
            OmegaConf.update(merged, key, value, merge=True)
        except OmegaConfBaseException as err:
            raise _explain(err, "command line") from None
        except (IndexError, ValueError, TypeError) as err:
            raise ConfigError(f"command line: {key}: {str(err).splitlines()[0]}") from None
    source = path or "config"
    try:
        cfg: Config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise _explain(err, source) from None
    return cfg


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))



def agents_of_policy(cfg: Config, policy: str) -> list[str]:
    return [a.name for a in cfg.agents if a.policy == policy]


def effective_optimizer(cfg: Config, policy: str) -> dict:
    """The policy's optimizer settings with its (sole) agent's overrides applied."""
    merged = {k: getattr(cfg.policies[policy].optimizer, k) for k in ("lr", "betas", "eps", "weight_decay", "grad_clip")}
    for agent in cfg.agents:
        if agent.policy == policy and agent.optimizer is not None:
            merged.update({k: v for k, v in vars(agent.optimizer).items() if v is not None})
    return merged
