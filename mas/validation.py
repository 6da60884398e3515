"""Config checks that need more than types: registered names, references between sections, ranges,
files, and the agent topology (who shares which policy, which workflow seats exist). Every failure
is one `ConfigError` line naming the file, the key and what is allowed.

The allowed values are read from the modules that own them (the loss its modes, the scheduler its
strategies, the registries their names), so each is defined once. This layer sits above everything
it imports to build envs, bots and estimators for checking."""
from __future__ import annotations

import importlib.util
import os
import re
from typing import Any

from mas.agents import bots
from mas.agents.backends import BACKENDS
from mas.agents.models import ATTENTION_IMPLEMENTATIONS, available_models, is_builtin
from mas.agents.pretrained import gguf_path, is_pretrained, prepared_folder
from mas.config import Config, ConfigError, agents_of_policy, parse_config
from mas.games import available_envs, env_spec, env_specs, make
from mas.games.base import PROMPT_STYLES, RewardConfig
from mas.games.workflow import TASKS, WORKFLOW_TYPES
from mas.orchestration.opponents import POOL_SAMPLES
from mas.orchestration.scheduler import PLACEMENT_STRATEGIES
from mas.orchestration.task_sampling import EVAL_TASK_SOURCES, SAMPLERS
from mas.orchestration.workers import DTYPES
from mas.training import schedule, sequential
from mas.training.advantages import available_estimators, loss_needs, make_estimator
from mas.training.losses import AGG_MODES, KL_ESTIMATORS, RATIO_MODES
from mas.training.lr_schedule import SCHEDULES as LR_SCHEDULES
from mas.training.strategies import STRATEGIES, ZERO_STAGES
from mas.training.trainer import RATIO_BASES

__all__ = ["load_config", "check_config"]


def load_config(path: str | None, overrides: list[str] | None = None) -> Config:
    """Load, merge overrides (`a.b=c`), type-check and validate; raises ConfigError."""
    cfg = parse_config(path, overrides)
    check_config(cfg, path or "config")
    return cfg


def _choice(source: str, key: str, value: Any, allowed: list[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{source}: {key}: unknown name '{value}'; allowed: {', '.join(map(str, allowed))}")


def _positive(source: str, key: str, value, zero_ok: bool = False) -> None:
    if value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise ConfigError(f"{source}: {key}: must be {bound}, got {value}")


def check_config(cfg: Config, source: str = "config") -> None:
    _check_names(cfg, source)
    _check_policies(cfg, source)
    _check_agents(cfg, source)
    _check_env(cfg, source)
    _check_mixture(cfg, source)
    _check_rollout_and_eval(cfg, source)
    _check_training(cfg, source)


def _check_names(cfg: Config, source: str) -> None:
    _choice(source, "env.name", cfg.env.name, available_envs())
    _choice(source, "env.rewards", cfg.env.rewards, list(RewardConfig.MODES))
    _choice(source, "env.prompt", cfg.env.prompt, list(PROMPT_STYLES))
    _choice(source, "scheduling.strategy", cfg.scheduling.strategy, list(PLACEMENT_STRATEGIES))
    _choice(source, "training.estimator", cfg.training.estimator, available_estimators())
    _choice(source, "training.loss.kl_estimator", cfg.training.loss.kl_estimator, list(KL_ESTIMATORS))
    _choice(source, "training.loss.ratio", cfg.training.loss.ratio, list(RATIO_MODES))
    _choice(source, "training.update", cfg.training.update, list(sequential.SCHEDULES))
    _choice(source, "training.schedule", cfg.training.schedule, list(schedule.SCHEDULES))
    _positive(source, "training.alternate_every", cfg.training.alternate_every)
    if cfg.training.schedule == "alternating":
        groups = {a.group or a.name for a in cfg.agents}
        if len(groups) < 2:
            raise ConfigError(f"{source}: training.schedule: alternating needs agents in at least two groups "
                              "(agents[].group), e.g. attackers and defenders")
        mixed = [p for p in cfg.policies if len({a.group or a.name for a in cfg.agents if a.policy == p}) > 1]
        if mixed:
            raise ConfigError(f"{source}: training.schedule: alternating trains one group at a time, but policy "
                              f"'{mixed[0]}' serves agents of several groups")
    _choice(source, "training.sequential.ratio_base", cfg.training.sequential.ratio_base, list(RATIO_BASES))
    _choice(source, "training.loss.agg", cfg.training.loss.agg, list(AGG_MODES))


def _check_policies(cfg: Config, source: str) -> None:
    if not cfg.policies:
        raise ConfigError(f"{source}: policies: at least one policy is required")
    for name, pol in cfg.policies.items():
        key = f"policies.{name}"
        _choice(source, f"{key}.backend", pol.backend, list(BACKENDS))
        _choice(source, f"{key}.dtype", pol.dtype, list(DTYPES))
        _choice(source, f"{key}.strategy", pol.strategy, list(STRATEGIES))
        if pol.strategy == "deepspeed" and pol.zero_stage == 3:
            raise ConfigError(
                f"{source}: {key}.zero_stage: stage 3 shards the weights, but the policy's generation backend "
                "in the same process needs them whole; use zero_stage 1 or 2"
            )
        _choice(source, f"{key}.zero_stage", pol.zero_stage, list(ZERO_STAGES))
        _check_extras(cfg, source, key, pol)
        _check_model_options(source, key, pol)
        if not is_builtin(pol.model):
            if pol.model.startswith("tiny-"):
                _choice(source, f"{key}.model", pol.model, available_models())
            looks_like_hub_id = re.fullmatch(r"[\w.-]+/[\w.-]+", pol.model) and not pol.model.startswith(".")
            if not os.path.isdir(os.path.expanduser(pol.model)) and not looks_like_hub_id:
                raise ConfigError(
                    f"{source}: {key}.model: '{pol.model}' is neither a built-in model "
                    f"({', '.join(available_models())}) nor an existing folder"
                )
        _positive(source, f"{key}.optimizer.lr", pol.optimizer.lr)
        _choice(source, f"{key}.optimizer.schedule", pol.optimizer.schedule, list(LR_SCHEDULES))
        _positive(source, f"{key}.optimizer.schedule_end", pol.optimizer.schedule_end, zero_ok=True)
        _positive(source, f"{key}.optimizer.warmup_iterations", pol.optimizer.warmup_iterations, zero_ok=True)
        _positive(source, f"{key}.resources.threads", pol.resources.threads)
        _positive(source, f"{key}.resources.num_cpus", pol.resources.num_cpus, zero_ok=True)
        _positive(source, f"{key}.resources.num_gpus", pol.resources.num_gpus, zero_ok=True)
        gpus = pol.resources.num_gpus
        if gpus > 1 and gpus != int(gpus):
            raise ConfigError(f"{source}: {key}.resources.num_gpus: a fraction below 1 or a whole number, got {gpus}")


def _check_extras(cfg: Config, source: str, key: str, pol) -> None:
    """Optional packages and the combinations they support, refused before anything starts."""
    if pol.backend == "vllm":
        from mas.agents.backends.vllm import vllm_available

        if not vllm_available():
            raise ConfigError(f"{source}: {key}.backend: 'vllm' needs the vllm extra (GPU machines): "
                              "pip install -e '.[vllm]'; or use backend: hf")
        if pol.device == "cpu":
            raise ConfigError(f"{source}: {key}.device: backend 'vllm' runs on a GPU; set device: cuda")
    if pol.strategy == "deepspeed":
        if importlib.util.find_spec("deepspeed") is None:
            raise ConfigError(f"{source}: {key}.strategy: 'deepspeed' needs the deepspeed extra: "
                              "pip install -e '.[deepspeed]'")
        if cfg.scheduling.strategy == "colocate" and cfg.scheduling.offload and pol.device != "cpu":
            raise ConfigError(f"{source}: {key}.strategy: a DeepSpeed policy cannot be offloaded between phases "
                              "(ZeRO owns its buffers); set scheduling.offload: false or strategy: torch")


def _check_agents(cfg: Config, source: str) -> None:
    if not cfg.agents:
        raise ConfigError(f"{source}: agents: at least one agent is required")
    seen = set()
    for i, agent in enumerate(cfg.agents):
        key = f"agents[{i}]"
        if agent.name in seen:
            raise ConfigError(f"{source}: {key}.name: duplicate agent name '{agent.name}'")
        seen.add(agent.name)
        _choice(source, f"{key}.policy", agent.policy, sorted(cfg.policies))
        _positive(source, f"{key}.sampling.temperature", agent.sampling.temperature, zero_ok=True)
        _positive(source, f"{key}.sampling.max_new_tokens", agent.sampling.max_new_tokens)
        if not 0 < agent.sampling.top_p <= 1:
            raise ConfigError(f"{source}: {key}.sampling.top_p: must be in (0, 1], got {agent.sampling.top_p}")
        if agent.optimizer is not None:
            sharing = agents_of_policy(cfg, agent.policy)
            if len(sharing) > 1:
                raise ConfigError(
                    f"{source}: {key}.optimizer: policy '{agent.policy}' is shared by agents {', '.join(sharing)}, "
                    f"so they share its optimizer; set policies.{agent.policy}.optimizer instead"
                )
            if agent.optimizer.lr is not None:
                _positive(source, f"{key}.optimizer.lr", agent.optimizer.lr)


def _check_env(cfg: Config, source: str) -> None:
    names = [a.name for a in cfg.agents]
    if cfg.env.seats is not None:
        for j, name in enumerate(cfg.env.seats):
            _choice(source, f"env.seats[{j}]", name, names)
    if cfg.env.name == "adversarial":
        _check_adversarial(cfg, source, names)
        return
    wf = cfg.env.workflow
    if cfg.env.name != "workflow":
        if wf is not None or cfg.env.task is not None:
            raise ConfigError(f"{source}: env.workflow / env.task: only for env.name: workflow (got '{cfg.env.name}')")
        return
    if wf is None:
        raise ConfigError(f"{source}: env.workflow: env.name 'workflow' needs a workflow section (type, agents, ...)")
    _choice(source, "env.workflow.type", wf.type, sorted(WORKFLOW_TYPES))
    for j, name in enumerate(wf.agents):
        _choice(source, f"env.workflow.agents[{j}]", name, names)
    for key in ("aggregator", "router"):
        if getattr(wf, key) is not None:
            _choice(source, f"env.workflow.{key}", getattr(wf, key), names)
    if cfg.env.seats is not None:
        raise ConfigError(f"{source}: env.seats: a workflow's seats are its agents; set env.workflow.agents instead")
    if cfg.env.task is not None:
        _choice(source, "env.task.name", cfg.env.task.name, sorted(TASKS))
    try:
        make(env_spec(cfg))  # the env the run will build, built once here to check its shape
    except ValueError as err:
        raise ConfigError(f"{source}: env.workflow: {err}") from None


def _check_model_options(source: str, key: str, pol) -> None:
    if is_pretrained(pol.model) and not (prepared_folder(pol.model) / "config.json").is_file():
        try:
            gguf_path(pol.model)
        except ValueError as err:
            raise ConfigError(f"{source}: {key}.model: {err}") from None
    _choice(source, f"{key}.attn_implementation", pol.attn_implementation, list(ATTENTION_IMPLEMENTATIONS))
    if pol.lora is not None:
        _positive(source, f"{key}.lora.r", pol.lora.r)
        _positive(source, f"{key}.lora.alpha", pol.lora.alpha)
        if not pol.lora.target_modules:
            raise ConfigError(f"{source}: {key}.lora.target_modules: name at least one module, e.g. [q_proj, v_proj]")
        if not 0 <= pol.lora.dropout < 1:
            raise ConfigError(f"{source}: {key}.lora.dropout: must be in [0, 1), got {pol.lora.dropout}")


def _check_adversarial(cfg: Config, source: str, names: list[str]) -> None:
    adv = cfg.env.adversarial
    if adv is None:
        raise ConfigError(f"{source}: env.adversarial: env.name 'adversarial' needs this section (attackers, defenders, ...)")
    for key in ("attackers", "defenders"):
        for j, name in enumerate(getattr(adv, key)):
            _choice(source, f"env.adversarial.{key}[{j}]", name, names)
    try:
        make(env_spec(cfg))
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{source}: env.adversarial: {str(err).splitlines()[0]}") from None


def _check_mixture(cfg: Config, source: str) -> None:
    if not cfg.env.mixture:
        return
    if cfg.env.name == "workflow":
        raise ConfigError(f"{source}: env.mixture: mixes games; a workflow env cannot be part of one")

    ids = []
    for i, (spec, share) in enumerate(env_specs(cfg)):
        if "name" not in cfg.env.mixture[i] or not 0 < share <= 1:
            raise ConfigError(f"{source}: env.mixture[{i}]: each game needs a name and a share in (0, 1]")
        try:
            ids.append(make(spec).id)
        except ValueError as err:
            raise ConfigError(f"{source}: env.mixture[{i}]: {str(err).splitlines()[0]}") from None
    if abs(sum(share for _, share in env_specs(cfg)) - 1.0) > 1e-6:
        raise ConfigError(f"{source}: env.mixture: the shares must add up to 1")
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{source}: env.mixture: two games have the env id '{ids[0]}'; give them distinct ids")


def _check_rollout_and_eval(cfg: Config, source: str) -> None:
    if cfg.env.name == "workflow" and cfg.rollout.opponents:
        raise ConfigError(f"{source}: rollout.opponents: a workflow has no game seats for bots; remove it")
    for spec, share in cfg.rollout.opponents.items():
        try:
            bots.check_spec(spec)
        except ValueError as err:
            raise ConfigError(f"{source}: rollout.opponents: {err}") from None
        if not 0 <= share <= 1:
            raise ConfigError(f"{source}: rollout.opponents.{spec}: a share in [0, 1], got {share}")
        if spec.startswith("checkpoint:") and not os.path.isdir(spec.split(":", 1)[1]):
            raise ConfigError(f"{source}: rollout.opponents: '{spec}': no such model folder")
    _choice(source, "rollout.pool.sample", cfg.rollout.pool.sample, list(POOL_SAMPLES))
    _positive(source, "rollout.pool.size", cfg.rollout.pool.size)
    if sum(cfg.rollout.opponents.values()) > 1:
        raise ConfigError(f"{source}: rollout.opponents: shares add up to more than 1")
    for key, specs in (("eval.opponents", cfg.eval.opponents), ("eval.final_opponents", cfg.eval.final_opponents)):
        for spec in specs:
            try:
                bots.check_spec(spec)
            except ValueError as err:
                raise ConfigError(f"{source}: {key}: {err}") from None
    _positive(source, "rollout.episodes", cfg.rollout.episodes)
    _positive(source, "rollout.group_size", cfg.rollout.group_size)
    _check_tasks(source, cfg.rollout, cfg.eval.tasks)
    if cfg.rollout.episodes % cfg.rollout.group_size:
        raise ConfigError(f"{source}: rollout.episodes must be a multiple of rollout.group_size")
    _check_opening(cfg, source)
    _positive(source, "eval.every", cfg.eval.every, zero_ok=True)
    _positive(source, "eval.exact_max_states", cfg.eval.exact_max_states)


def _check_opening(cfg: Config, source: str) -> None:
    rollout = cfg.rollout
    _positive(source, "rollout.opening_moves", rollout.opening_moves, zero_ok=True)
    if not 0.0 <= rollout.opening_share <= 1.0:
        raise ConfigError(f"{source}: rollout.opening_share must be in [0, 1], got {rollout.opening_share}")
    if rollout.opening_moves and cfg.env.history:
        raise ConfigError(f"{source}: rollout.opening_moves needs env.history: false (with the history, the random "
                          "opening moves would appear in the chat as the seat's own answers)")
    if rollout.opening_moves and (cfg.env.workflow is not None or cfg.env.task is not None or cfg.env.mixture):
        raise ConfigError(f"{source}: rollout.opening_moves plays random legal moves, so it needs a game with a list "
                          "of legal actions, not a workflow, task or mixture")


def _check_training(cfg: Config, source: str) -> None:
    seq = cfg.training.sequential
    _positive(source, "training.sequential.steps_per_pool", seq.steps_per_pool)
    if seq.clip_factor is not None and not 0 < seq.clip_factor < 1:
        raise ConfigError(f"{source}: training.sequential.clip_factor: in (0, 1) or null, got {seq.clip_factor}")
    order = seq.order
    if isinstance(order, str):
        _choice(source, "training.sequential.order", order, list(sequential.ORDERS))
    elif not isinstance(order, (list, tuple)) or sorted(order) != sorted(a.name for a in cfg.agents
                                                                          if cfg.policies[a.policy].trainable):
        raise ConfigError(f"{source}: training.sequential.order: reverse, forward, random, or a list naming each "
                          f"trained agent once ({', '.join(a.name for a in cfg.agents)}); got {order}")
    _positive(source, "training.iterations", cfg.training.iterations)
    _positive(source, "training.ppo_epochs", cfg.training.ppo_epochs)
    _positive(source, "training.mini_batches", cfg.training.mini_batches)
    _positive(source, "run.save_every", cfg.run.save_every)
    _positive(source, "run.max_restarts", cfg.run.max_restarts, zero_ok=True)
    if cfg.resume is not None and not os.path.isdir(cfg.resume):
        raise ConfigError(f"{source}: resume: run folder '{cfg.resume}' not found")
    if loss_needs(cfg.training.estimator).blend and cfg.training.update != "joint":
        raise ConfigError(f"{source}: training.estimator {cfg.training.estimator} blends two advantages in the loss, "
                          f"which only training.update: joint does; got {cfg.training.update}")
    try:
        make_estimator(cfg.training.estimator, **cfg.training.estimator_args)
    except ValueError as err:
        raise ConfigError(f"{source}: training.estimator_args: {str(err).splitlines()[0]}") from None


def _check_tasks(source: str, rollout, eval_tasks: str) -> None:
    _choice(source, "eval.tasks", eval_tasks, list(EVAL_TASK_SOURCES))
    _positive(source, "rollout.tasks", rollout.tasks, zero_ok=True)
    _choice(source, "rollout.task_sampler", rollout.task_sampler, list(SAMPLERS))
    if rollout.task_sampler == "vade" and not rollout.tasks:
        raise ConfigError(f"{source}: rollout.task_sampler vade picks from a task pool; set rollout.tasks to its size")
    v = rollout.vade
    if rollout.tasks == 0 and eval_tasks == "pool":
        raise ConfigError(f"{source}: eval.tasks pool evaluates on the task pool; set rollout.tasks to its size")
    for key, value in (("decay", v.decay), ("relax", v.relax)):
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{source}: rollout.vade.{key} must be in (0, 1], got {value}")
    if not v.prior > 0:
        raise ConfigError(f"{source}: rollout.vade.prior must be > 0, got {v.prior}")
