"""Starting workers: as Ray actors on a local instance bound to loopback (or an explicit cluster
address), or in-process when Ray is off. Ray is imported only when used."""
from __future__ import annotations

import logging
import os

from mas.orchestration.handles import LocalHandle, RayHandle
from mas.orchestration.workers import PolicyWorker, WorkerSpec


def start_ray(address: str | None = None, *, dashboard: bool = False, num_cpus=None, num_gpus=None) -> None:
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs = dict(include_dashboard=dashboard, logging_level=logging.WARNING, log_to_driver=True,
                  configure_logging=True)
    if address:
        ray.init(address=address, **kwargs)
    else:
        # A local instance listens on loopback only: nothing on this machine is exposed to the network.
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, _node_ip_address="127.0.0.1", **kwargs)


def start_worker(spec: WorkerSpec, *, use_ray: bool, num_cpus: float = 1.0, num_gpus: float = 0.0):
    if not use_ray:
        return LocalHandle(PolicyWorker(spec))
    import ray

    actor_cls = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0)(PolicyWorker)
    handle = RayHandle(actor_cls.remote(spec))
    handle.call("ready")
    return handle


def stop_worker(handle) -> None:
    if isinstance(handle, RayHandle):
        import ray

        ray.kill(handle.actor)
