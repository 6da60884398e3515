"""Environments: everything that hands out turns to seats.

`make(spec)` builds a registered env from an id string ("tic_tac_toe") or a mapping such as
{"name": "openspiel", "game": "kuhn_poker", "id": "kuhn_poker", "rewards": "mars"}: "name" picks the
factory, every other key is passed to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mas.games.base import (
    Env,
    EnvState,
    RewardConfig,
    StepResult,
    available_envs,
    extract_answer,
    get_env_factory,
    parse_action,
    register_env,
)
from mas.games import openspiel as _openspiel  # noqa: F401  (registers openspiel, tic_tac_toe, kuhn_poker)
from mas.games import workflow as _workflow  # noqa: F401  (registers workflow)
from mas.games import race21 as _race21  # noqa: F401  (registers race_to_21, the custom-game example)
from mas.games import adversarial as _adversarial  # noqa: F401  (registers adversarial)

__all__ = [
    "Env",
    "EnvState",
    "RewardConfig",
    "StepResult",
    "available_envs",
    "env_spec",
    "env_specs",
    "extract_answer",
    "make",
    "parse_action",
    "register_env",
]


def make(spec: Any) -> Env:
    """An `Env` from a registered id string or a mapping with "name" (OmegaConf configs too)."""
    if hasattr(spec, "_metadata"):  # an OmegaConf node: plain containers from here on
        from omegaconf import OmegaConf

        spec = OmegaConf.to_container(spec, resolve=True)
    if isinstance(spec, str):
        name, options = spec, {}
    elif isinstance(spec, Mapping):
        options = {k: v for k, v in spec.items() if v is not None}  # None: the factory's default
        name = options.pop("name", None)
        if name is None:
            raise ValueError(f"env spec needs a 'name' (one of: {', '.join(available_envs())}); got {spec!r}")
    else:
        raise ValueError(f"env spec must be a name or a mapping, got {type(spec).__name__}")
    factory = get_env_factory(str(name))
    try:
        env = factory(**options)
    except TypeError as e:
        msg = str(e)
        if "unexpected keyword argument" in msg or "missing" in msg and "required" in msg:
            raise ValueError(f"env '{name}': {msg.split(') ', 1)[-1]}") from None
        raise
    if not isinstance(env, Env):
        raise TypeError(f"env '{name}': its factory returned a {type(env).__name__}, which does not inherit "
                        "mas.games.Env (see docs/games.md)")
    return env


def env_spec(cfg) -> dict:
    """The `make` spec of a run config's `env` section (`cfg` is a `mas.config.Config`)."""
    e = cfg.env
    if e.name == "adversarial":
        from dataclasses import asdict

        spec = {"name": "adversarial", **asdict(e.adversarial)}
        if e.task is not None:
            spec["task"] = {k: v for k, v in asdict(e.task).items() if k != "name"}
    elif e.name == "workflow":
        from dataclasses import asdict

        spec = {"name": "workflow", "workflow": asdict(e.workflow), "history": e.history}
        if e.task is not None:
            spec["task"] = asdict(e.task)
    else:
        spec = {"name": e.name, "rewards": e.rewards, "format_reward": e.format_reward,
                "invalid_penalty": e.invalid_penalty, "draw_reward": e.draw_reward, "max_turns": e.max_turns,
                "prompt": e.prompt, "history": e.history}
        if e.game is not None:
            spec["game"] = e.game
        if e.params:
            spec["params"] = dict(e.params)
    if e.id is not None:
        spec["id"] = e.id
    return spec


_MIXTURE_ONLY = ("share",)


def env_specs(cfg) -> list[tuple[dict, float]]:
    """(make spec, share of the iteration's groups) per game: one game, or `env.mixture`."""
    base = env_spec(cfg)
    if not cfg.env.mixture:
        return [(base, 1.0)]
    out = []
    for entry in cfg.env.mixture:
        spec = {k: v for k, v in base.items() if k not in ("game", "id", "params")}
        spec.update({k: v for k, v in dict(entry).items() if k not in _MIXTURE_ONLY})
        out.append((spec, float(entry.get("share", 0.0))))
    return out
