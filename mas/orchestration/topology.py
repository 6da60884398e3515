"""From a run config to the objects the controller drives: agents, the agent on each seat, and the
spec of each policy's worker (shared by every agent that names the policy)."""
from __future__ import annotations

from mas.agents.agent import Agent
from mas.agents.backends.base import SamplingParams
from mas.config import Config, ConfigError, effective_optimizer
from mas.orchestration.workers import WorkerSpec
from mas.seeding import stable_seed
from mas.training.advantages import loss_needs
from mas.training.losses import LossConfig
from mas.training.strategies import OptimizerSettings
from mas.training.trainer import UpdateSettings

__all__ = ["build_agents", "seat_agents", "worker_spec"]


def build_agents(cfg: Config) -> dict[str, Agent]:
    return {
        a.name: Agent(
            name=a.name,
            policy=a.policy,
            role_prompt=a.role_prompt,
            sampling=SamplingParams(a.sampling.temperature, a.sampling.top_p, a.sampling.top_k, a.sampling.max_new_tokens),
            constrained=a.sampling.constrained,
            group=a.group,
        )
        for a in cfg.agents
    }


def seat_agents(cfg: Config, agents: dict[str, Agent], env) -> list[Agent]:
    """The agent on each seat: a workflow names its seats; in a game `env.seats` does, else one
    agent plays every seat (self-play) or the agents take the seats in order."""
    num_seats = env.num_seats
    if env.seat_names:
        names = list(env.seat_names)
    elif cfg.env.seats is not None:
        names = list(cfg.env.seats)
    elif len(agents) == 1:
        names = list(agents) * num_seats
    else:
        names = list(agents)
    if len(names) != num_seats:
        raise ConfigError(
            f"env.seats: the env has {num_seats} seats but {len(names)} agents are assigned; "
            "list one agent per seat in env.seats"
        )
    return [agents[n] for n in names]


def _clip_range(cfg) -> dict:
    """training.loss's clip range; where it is unset, the estimator's own (token ratio only)."""
    loss = cfg.training.loss
    own = loss_needs(cfg.training.estimator).clip if loss.ratio == "token" else None
    low, high = own or (None, None)
    return {"clip_low": low if loss.clip_low is None else loss.clip_low,
            "clip_high": high if loss.clip_high is None else loss.clip_high}


def worker_spec(cfg: Config, policy: str, model_path: str, *, trainable: bool = True) -> WorkerSpec:
    p = cfg.policies[policy]
    loss = cfg.training.loss
    opt = effective_optimizer(cfg, policy)
    max_new = max((a.sampling.max_new_tokens for a in cfg.agents if a.policy == policy), default=None)
    return WorkerSpec(
        policy=policy,
        model_path=model_path,
        seed=stable_seed(cfg.run.seed, p.seed),
        device=p.device,
        dtype=p.dtype,
        threads=p.resources.threads,
        optimizer=OptimizerSettings(lr=opt["lr"], betas=tuple(opt["betas"]), eps=opt["eps"],
                                    weight_decay=opt["weight_decay"], grad_clip=opt["grad_clip"]),
        loss=LossConfig(**_clip_range(cfg), dual_clip=loss.dual_clip,
                        kl_coef=loss.kl_coef, kl_estimator=loss.kl_estimator,
                        entropy_coef=loss.entropy_coef, agg=loss.agg, max_new_tokens=max_new,
                        ratio=loss.ratio),
        update=UpdateSettings(ppo_epochs=cfg.training.ppo_epochs, mini_batches=cfg.training.mini_batches,
                              micro_batch_tokens=cfg.training.micro_batch_tokens,
                              agent_grad_norm_every=cfg.training.agent_grad_norm_every),
        max_batch_size=p.max_batch_size,
        trainable=trainable and p.trainable,
        backend=p.backend,
        strategy=p.strategy,
        zero_stage=p.zero_stage,
        lora=None if p.lora is None else {"r": p.lora.r, "alpha": p.lora.alpha, "dropout": p.lora.dropout,
                                          "target_modules": list(p.lora.target_modules)},
        attn_implementation=p.attn_implementation,
        gradient_checkpointing=p.gradient_checkpointing,
    )
