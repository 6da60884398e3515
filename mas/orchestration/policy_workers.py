"""The policy workers of a run, owned by one object: placement, start, stop, restart after a death,
offload/onload around update phases, which policies train, save and load.

It reads as a mapping from policy name to the handle that serves it, so the rollout engine asks it
for a policy's handle and always gets the live one, also after a restart. Several policies may one
day share one worker (adapters over one base model): every call that reaches each worker once
goes through `_distinct`, every call per policy through the mapping."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from mas.config import Config, effective_optimizer
from mas.orchestration.cluster import start_ray, start_worker, stop_worker
from mas.orchestration.handles import gather
from mas.orchestration.scheduler import ResourcePool, check_capacity, local_capacity, plan_placement
from mas.orchestration.topology import worker_spec
from mas.training.lr_schedule import lr_factor


class PolicyWorkers(Mapping):
    def __init__(self, cfg: Config, model_paths: dict[str, str]):
        self.cfg = cfg
        self.model_paths = dict(model_paths)
        self.plan = plan_placement(cfg)
        if cfg.ray.enabled and not cfg.ray.address:  # refused before anything starts
            check_capacity(self.plan, local_capacity(cfg))
        self.pool: ResourcePool | None = None
        self._handles: dict[str, Any] = {}

    # --- the mapping: policy -> handle --------------------------------------------------------
    def __getitem__(self, policy: str):
        return self._handles[policy]

    def __iter__(self) -> Iterator[str]:
        return iter(self._handles)

    def __len__(self) -> int:
        return len(self._handles)

    def trainable(self) -> list[str]:
        """The policies that learn, in config order."""
        return [p for p in self._handles if self.cfg.policies[p].trainable]

    def _distinct(self) -> list:
        return list({id(h): h for h in self._handles.values()}.values())

    def _trainable_rows(self, turns: list) -> list[tuple[str, list[int]]]:
        """(policy, indices of its turns) for each trainable policy that has turns."""
        out = [(p, [i for i, t in enumerate(turns) if t.policy == p]) for p in self.trainable()]
        return [(p, rows) for p, rows in out if rows]

    # --- lifetime -----------------------------------------------------------------------------
    def start(self) -> None:
        """Join or start Ray and reserve the placement (once), then start every worker."""
        cfg = self.cfg
        if cfg.ray.enabled and self.pool is None:
            start_ray(cfg.ray.address, dashboard=cfg.ray.dashboard, num_cpus=cfg.ray.num_cpus, num_gpus=cfg.ray.num_gpus)
            if cfg.ray.address:
                import ray

                check_capacity(self.plan, ray.cluster_resources(), f"the cluster at {cfg.ray.address}")
            self.pool = ResourcePool(self.plan)
        for name, path in self.model_paths.items():
            options = self.pool.actor_options(name) if self.pool else None
            self._handles[name] = start_worker(worker_spec(cfg, name, path), use_ray=cfg.ray.enabled, options=options)

    def stop(self) -> None:
        """Stop every worker; the placement stays reserved for a restart."""
        for handle in self._distinct():
            stop_worker(handle)
        self._handles.clear()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the workers and give the placement back (a shared Ray session keeps running)."""
        self.stop()
        if self.pool is not None:
            self.pool.remove()
            self.pool = None

    def initial_copies(self, policies: list[str]) -> dict[str, Any]:
        """In-process frozen workers with the untrained weights of `policies` (the initial-model
        comparison of the final evaluation)."""
        return {p: start_worker(worker_spec(self.cfg, p, self.model_paths[p], trainable=False), use_ray=False)
                for p in policies}

    # --- training -----------------------------------------------------------------------------
    def set_learning_rates(self, iteration: int) -> dict[str, float]:
        """Each trainable policy's learning rate for `iteration` (its optimizer.schedule); returns them."""
        rates, calls = {}, []
        for policy in self.trainable():
            opt = self.cfg.policies[policy].optimizer
            factor = lr_factor(opt.schedule, iteration, self.cfg.training.iterations, end=opt.schedule_end,
                               warmup=opt.warmup_iterations)
            rates[policy] = effective_optimizer(self.cfg, policy)["lr"] * factor
            calls.append(self[policy].submit("set_lr_factor", factor))
        gather(calls)
        return rates

    def update(self, turns: list, advantages: list, seed: int) -> dict[str, dict[str, float]]:
        """Each trainable policy learns from its own rows: side by side (split), or one after
        another with only the active model on the shared device (colocate). Metrics per policy."""
        jobs = [(policy, [turns[i] for i in rows], [advantages[i] for i in rows])
                for policy, rows in self._trainable_rows(turns)]
        if self.cfg.scheduling.strategy != "colocate":
            results = gather([self[p].submit("update", rows, adv, seed) for p, rows, adv in jobs])
            return {p: m for (p, *_), m in zip(jobs, results)}
        results = {}
        offload = self.cfg.scheduling.offload
        for policy, rows, adv in jobs:
            if offload:
                gather([self[name].submit("offload") for name in self if name != policy])
            results[policy] = self[policy].call("update", rows, adv, seed)
        if offload:
            gather([h.submit("onload") for h in self._distinct()])
        return results

    def update_pools(self, jobs: list, turns: list, steps: int, ratio_base: str) -> list:
        """One stage of a sequential update: each (pool, advantages) job on its policy's worker."""
        return gather([self[pool.policy].submit("update_pool", [turns[r] for r in pool.rows], adv, steps, ratio_base)
                       for pool, adv in jobs])

    def token_logprobs(self, turns: list) -> list:
        """Each turn's response-token log-probs under its policy now (None where the policy does
        not train, so has no trainer to score with)."""
        out: list = [None] * len(turns)
        for policy, rows in self._trainable_rows(turns):
            for i, lp in zip(rows, self[policy].call("token_logprobs", [turns[i] for i in rows])):
                out[i] = lp
        return out

    # --- checkpoints --------------------------------------------------------------------------
    def save(self, step_dir: str) -> None:
        gather([h.submit("save", step_dir) for h in self._distinct()])

    def load(self, step_dir: str) -> None:
        gather([h.submit("load", step_dir) for h in self._distinct()])
