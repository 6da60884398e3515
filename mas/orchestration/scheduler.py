"""Resource pools: where each policy's worker runs.

A plan turns the policies' `resources` and `scheduling.strategy` into Ray placement-group bundles
and one actor request per policy:

  split     one bundle per policy with exactly its CPUs and GPUs (fractions allowed, e.g. two
            policies at 0.5 GPU may share a device), so policies train side by side;
  colocate  one shared bundle: the CPUs of all policies and one GPU (if any policy asks for a GPU)
            that every GPU policy time-shares. Ray counts each of them as 1/n of it; the run keeps
            only the active model on the device and offloads the others between phases.

The plan is checked against what the cluster has before Ray starts anything (`check_capacity`).
Devices inside a worker come from the config, never from Ray's GPU ids (Ray may declare GPUs a
machine lacks)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from mas.config import Config, ConfigError

__all__ = ["Placement", "PlacementPlan", "plan_placement", "local_capacity", "check_capacity", "ResourcePool"]

PLACEMENT_STRATEGIES = ("split", "colocate")  # scheduling.strategy, described above
_MIN_BUNDLE_CPU = 0.01  # Ray refuses empty bundles; a policy may ask for no CPU of its own


@dataclass(frozen=True)
class Placement:
    policy: str
    bundle: int  # index into the pool's bundles
    num_cpus: float  # the actor's request inside its bundle
    num_gpus: float


@dataclass
class PlacementPlan:
    strategy: str
    bundles: list[dict[str, float]]
    placements: dict[str, Placement]

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for bundle in self.bundles:
            for key, value in bundle.items():
                out[key] = out.get(key, 0.0) + value
        return out


def plan_placement(cfg: Config) -> PlacementPlan:
    policies = {name: p.resources for name, p in cfg.policies.items()}
    if cfg.scheduling.strategy == "split":
        bundles, placements = [], {}
        for i, (name, res) in enumerate(policies.items()):
            bundle = {"CPU": max(res.num_cpus, _MIN_BUNDLE_CPU)}
            if res.num_gpus:
                bundle["GPU"] = res.num_gpus
            bundles.append(bundle)
            placements[name] = Placement(name, i, res.num_cpus, res.num_gpus)
        return PlacementPlan("split", bundles, placements)
    gpu_users = [name for name, res in policies.items() if res.num_gpus > 0]
    for name in gpu_users:
        if policies[name].num_gpus > 1:
            raise ConfigError(
                f"policies.{name}.resources.num_gpus: colocated policies time-share one GPU, so at most 1 "
                f"(got {policies[name].num_gpus}); use scheduling.strategy: split for more"
            )
    bundle = {"CPU": max(sum(res.num_cpus for res in policies.values()), _MIN_BUNDLE_CPU)}
    if gpu_users:
        bundle["GPU"] = 1.0
    share = 1.0 / len(gpu_users) if gpu_users else 0.0
    placements = {name: Placement(name, 0, res.num_cpus, share if name in gpu_users else 0.0)
                  for name, res in policies.items()}
    return PlacementPlan("colocate", [bundle], placements)


def local_capacity(cfg: Config) -> dict[str, float]:
    """What a local instance started for this run will declare."""
    gpus = cfg.ray.num_gpus
    if gpus is None:
        try:
            import torch

            gpus = torch.cuda.device_count()
        except Exception:  # torch without CUDA support
            gpus = 0
    return {"CPU": float(cfg.ray.num_cpus if cfg.ray.num_cpus is not None else os.cpu_count() or 1),
            "GPU": float(gpus)}


def check_capacity(plan: PlacementPlan, capacity: dict[str, float], where: str = "the local Ray instance") -> None:
    """One line naming what is asked and what there is, when the plan cannot fit."""
    totals = plan.totals()
    for key in ("CPU", "GPU"):
        want, have = totals.get(key, 0.0), capacity.get(key, 0.0)
        if want > have + 1e-9:
            asked = ", ".join(f"{p.policy}: {p.num_cpus:g} CPU / {p.num_gpus:g} GPU" for p in plan.placements.values())
            raise ConfigError(
                f"policies.*.resources: the run needs {want:g} {key} ({plan.strategy}; {asked}) but {where} "
                f"has {have:g}; lower resources.num_cpus / num_gpus, or set ray.num_cpus / ray.num_gpus"
            )


class ResourcePool:
    """A Ray placement group holding the plan's bundles; `actor_options(policy)` places a worker."""

    def __init__(self, plan: PlacementPlan, timeout_s: float = 60.0):
        import ray
        from ray.util.placement_group import placement_group

        self.plan = plan
        self.group = placement_group(plan.bundles, strategy="PACK")
        try:
            ray.get(self.group.ready(), timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:
            ray.util.remove_placement_group(self.group)
            raise ConfigError(
                f"policies.*.resources: Ray could not reserve {plan.bundles} within {timeout_s:g} s; "
                f"the cluster has {ray.available_resources()}"
            ) from None

    def actor_options(self, policy: str) -> dict:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        p = self.plan.placements[policy]
        return {
            "num_cpus": p.num_cpus,
            "num_gpus": p.num_gpus,
            "scheduling_strategy": PlacementGroupSchedulingStrategy(
                placement_group=self.group, placement_group_bundle_index=p.bundle),
        }

    def remove(self) -> None:
        import ray

        ray.util.remove_placement_group(self.group)
