"""A checkpoint (or a built-in model) as a frozen, in-process agent: used by `mas eval` and
`mas play`. Sampling defaults come from the run config the checkpoint was trained with."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mas.agents.agent import Agent
from mas.agents.backends.base import SamplingParams
from mas.agents.models import is_builtin, load_tokenizer, resolve
from mas.orchestration.handles import LocalHandle
from mas.orchestration.workers import PolicyWorker, WorkerSpec


@dataclass
class LoadedPolicy:
    agent: Agent
    handle: LocalHandle
    tokenizer: Any
    path: Path

    def engine_parts(self) -> tuple[dict, dict]:
        """The `handles` and `tokenizers` a RolloutEngine needs for this agent."""
        return {self.agent.policy: self.handle}, {self.agent.policy: self.tokenizer}


def run_config_sampling(policy_dir: Path) -> dict:
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


def run_config_file(policy_dir: Path) -> Path | None:
    """The config.yaml of the mas run a checkpoint folder sits in (RUN/step-N/POLICY or RUN/POLICY)."""
    return next((p / "config.yaml" for p in (policy_dir.parent.parent, policy_dir.parent)
                 if (p / "config.yaml").is_file()), None)


def trained_setup(policy_dir: Path, env_id: str) -> tuple[Any, str]:
    """The env (built as in training) and the agent's role prompt, when `policy_dir` sits in a mas
    run folder whose env is `env_id`; (None, "") otherwise."""
    from mas.config import ConfigError
    from mas.validation import load_config
    from mas.games import env_spec, make

    cfg_file = run_config_file(policy_dir)
    if cfg_file is None:
        return None, ""
    try:
        cfg = load_config(str(cfg_file))
        env = make(env_spec(cfg))
    except (ConfigError, ValueError):
        return None, ""  # an older or foreign config: play with the env's defaults
    if env.id != env_id:
        return None, ""
    role = next((a.role_prompt for a in cfg.agents if a.policy == policy_dir.name), "")
    return env, role


def policy_folder(path: str, option: str = "--policy") -> Path:
    """A Hugging Face model folder from a checkpoint path, a step folder with one policy, or a
    built-in model name; a one-line ValueError otherwise."""
    if not os.path.isdir(path):
        if is_builtin(path) or path.startswith("tiny-"):
            path = str(resolve(path))  # an unknown tiny-* name fails here with the list of models
        else:
            raise ValueError(f"{option}: '{path}' is not a folder (a checkpoint such as runs/NAME/final/POLICY)")
    policy_dir = Path(path).resolve()
    if not (policy_dir / "config.json").is_file():
        subdirs = [d for d in policy_dir.iterdir() if (d / "config.json").is_file()]
        if len(subdirs) != 1:
            raise ValueError(f"{option}: '{path}' holds no Hugging Face model (config.json)")
        policy_dir = subdirs[0]  # a step folder with one policy in it
    return policy_dir


def load_policy(path: str, *, name: str = "eval", temperature: float = 0.0, constrained: bool | None = None,
                max_new_tokens: int | None = None, threads: int | None = None, option: str = "--policy") -> LoadedPolicy:
    policy_dir = policy_folder(path, option)
    trained = run_config_sampling(policy_dir)
    constrained = constrained if constrained is not None else bool(trained.get("constrained", False))
    max_new = max_new_tokens or int(trained.get("max_new_tokens", 32))
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    worker = PolicyWorker(WorkerSpec(policy=name, model_path=str(policy_dir), trainable=False, threads=threads))
    agent = Agent(name=name, policy=name, sampling=SamplingParams(temperature=temperature, max_new_tokens=max_new),
                  constrained=constrained)
    return LoadedPolicy(agent, LocalHandle(worker), load_tokenizer(str(policy_dir)), policy_dir)
