"""Advantage estimators, registered by name (docs/algorithms.md, "Estimators").

    estimate(name, batch, **cfg) -> Tensor[len(batch)] float32       stateless estimators
    estimate(name, batch, return_aux=True, **cfg) -> (Tensor, dict)    plus per-row loss_mask/weight
    make_estimator(name, **cfg) -> object with __call__(batch), state_dict(), load_state_dict()

An estimator is registered with `@register_estimator("name")` on either
- a function `fn(batch, *, option=default, ...)` returning a tensor, or `(tensor, aux_dict)`: stateless;
- a class (inheriting `StatefulEstimator`) whose `__init__(self, *, option=default, ...)` takes the
  options and whose instances have `__call__(batch)`, `state_dict()` and `load_state_dict(state)`,
  and optionally `observe(batch, score)`, called after each update: stateful.
The keyword parameters are the estimator's options; anything else in `cfg` is a one-line ValueError.
What an estimator asks of the policy loss (a clip range, a row mask, a blend of two advantages) is
declared at registration, `@register_estimator("name", loss=LossNeeds(...))`; `loss_rows` turns its
extras into what the loss reads, and `loss_needs(name).clip` is the clip range to default to.

Every module of this package other than `common` is imported below, so a family module registers its
estimators just by existing (one module per family: group_relative, multi_agent, ...).
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

import torch

__all__ = ["register_estimator", "estimate", "make_estimator", "available_estimators", "LossNeeds", "loss_needs",
           "loss_rows", "StatefulEstimator"]


@dataclass(frozen=True)
class LossNeeds:
    """What an estimator asks of the policy loss (docs/algorithms.md, "Loss-side extras").

    clip: (clip_low, clip_high) used where `training.loss` leaves them unset (token ratio only).
    row_mask: the estimator returns a per-row `loss_mask`; rows with 0 leave the update.
    blend: the estimator returns per-row `adv_global`, `adv_local` and `blend_w`; each row's loss
        is the blend (1 - w) * clipped(A_global) + w * clipped(A_local).
    """

    clip: tuple[float, float] | None = None
    row_mask: bool = False
    blend: bool = False

    @property
    def extras(self) -> tuple[str, ...]:
        """The aux keys these needs read."""
        keys = ("loss_mask",) if self.row_mask else ()
        return keys + (("adv_global", "adv_local", "blend_w") if self.blend else ())


@dataclass(frozen=True)
class _Entry:
    name: str
    target: Callable[..., Any]
    stateful: bool
    options: tuple[str, ...]
    loss: LossNeeds


_REGISTRY: dict[str, _Entry] = {}


def _options_of(target: Callable[..., Any], stateful: bool) -> tuple[str, ...]:
    params = list(inspect.signature(target).parameters.values())
    # A function's first parameter is the batch; a class's __init__ signature excludes self.
    if not stateful:
        params = params[1:]
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in params if p.kind in kinds)


def register_estimator(name: str, *, loss: LossNeeds = LossNeeds()) -> Callable[[Any], Any]:
    """Decorator: register a function (stateless) or a class (stateful) under `name`, with what
    it asks of the loss."""

    def decorate(target):
        if name in _REGISTRY and _REGISTRY[name].target is not target:
            raise ValueError(f"estimator {name!r} is already registered")
        stateful = inspect.isclass(target)
        if stateful and not issubclass(target, StatefulEstimator):
            raise TypeError(f"estimator {name!r}: {target.__name__} must inherit StatefulEstimator")
        _REGISTRY[name] = _Entry(name, target, stateful, _options_of(target, stateful), loss)
        return target

    return decorate


def loss_needs(name: str) -> LossNeeds:
    """What the estimator `name` asks of the loss."""
    return _lookup(name, {}).loss


def loss_rows(name: str, turns: list, advantages: torch.Tensor, aux: dict[str, Any]) -> tuple[list, list]:
    """The rows the loss sees and what each carries, from the extras the estimator `name`
    declared: rows whose `loss_mask` is 0 leave the update; with a blend, a row carries
    [[1 - w, A_global], [w, A_local]] instead of its advantage."""
    needs = loss_needs(name)
    missing = [k for k in needs.extras if k not in aux]
    if missing:
        raise RuntimeError(f"estimator {name!r} declares loss extras it did not return: {', '.join(missing)}")
    if needs.blend:
        w, glob, loc = (aux[k].tolist() for k in ("blend_w", "adv_global", "adv_local"))
        values = [[[1.0 - wi, g], [wi, lo]] for wi, g, lo in zip(w, glob, loc)]
    else:
        values = advantages.tolist()
    if needs.row_mask:
        keep = [i for i, m in enumerate(aux["loss_mask"].tolist()) if m > 0]
        return [turns[i] for i in keep], [values[i] for i in keep]
    return turns, values


class StatefulEstimator:
    """Base of stateful estimators: `__call__(batch, return_aux=False)`, `state_dict()`,
    `load_state_dict(state)`; `observe` is optional."""

    def __call__(self, batch: Any, *, return_aux: bool = False):
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def observe(self, batch: Any, score: Callable[[list], list] | None = None) -> None:
        """After the update: learn from the batch, with `score(turns)` giving each turn's
        log-probs under the updated policy (None where a policy does not train). Default: nothing."""


def available_estimators() -> list[str]:
    """Registered estimator names, sorted."""
    return sorted(_REGISTRY)


def _lookup(name: str, cfg: dict[str, Any]) -> _Entry:
    entry = _REGISTRY.get(name)
    if entry is None:
        raise ValueError(
            f"unknown estimator {name!r}; registered: {', '.join(available_estimators())}"
        )
    unknown = [k for k in cfg if k not in entry.options]
    if unknown:
        allowed = ", ".join(entry.options) or "none"
        raise ValueError(
            f"estimator {name!r} has no option {unknown[0]!r}; allowed options: {allowed}"
        )
    return entry


def _split_output(name: str, out: Any, n_rows: int) -> tuple[torch.Tensor, dict[str, Any]]:
    adv, aux = out if isinstance(out, tuple) else (out, {})
    adv = torch.as_tensor(adv).to(torch.float32).reshape(-1)
    if adv.shape[0] != n_rows:
        raise RuntimeError(f"estimator {name!r} returned {adv.shape[0]} advantages for {n_rows} rows")
    return adv, dict(aux)


def estimate(name: str, batch: Any, *, return_aux: bool = False, **cfg: Any):
    """Advantages of every row of `batch` from the stateless estimator `name` with options `cfg`.
    Returns a float32 tensor of shape [len(batch)], or `(advantages, aux)` with `return_aux=True`
    (`aux` holds per-row `loss_mask` / `loss_weight` where the estimator has them, else {})."""
    entry = _lookup(name, cfg)
    if entry.stateful:
        raise ValueError(f"estimator {name!r} keeps state: use make_estimator({name!r}, ...)")
    adv, aux = _split_output(name, entry.target(batch, **cfg), len(batch))
    return (adv, aux) if return_aux else adv


class StatelessEstimator:
    """A stateless estimator bound to its options, with the stateful interface (empty state)."""

    def __init__(self, name: str, **cfg: Any):
        self.name = name
        self.cfg = dict(cfg)
        _lookup(name, self.cfg)

    def __call__(self, batch: Any, *, return_aux: bool = False):
        return estimate(self.name, batch, return_aux=return_aux, **self.cfg)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"estimator {self.name!r} has no state; got keys {sorted(state)}")

    def observe(self, batch: Any, score: Callable[[list], list] | None = None) -> None:
        """Nothing to learn: no state."""

    def __repr__(self) -> str:
        return f"StatelessEstimator({self.name!r}, {self.cfg})"


def make_estimator(name: str, **cfg: Any):
    """An estimator object: a new instance for stateful ones, a `StatelessEstimator` otherwise."""
    entry = _lookup(name, cfg)
    if entry.stateful:
        return entry.target(**cfg)
    return StatelessEstimator(name, **cfg)


def _import_families() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name != "common" and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_import_families()
