"""Starting workers: as Ray actors on a local instance bound to loopback (or an explicit cluster
address), or in-process when Ray is off. Ray is imported only when used."""
from __future__ import annotations

import logging
import os
import sys

from mas.orchestration.handles import LocalHandle, RayHandle
from mas.orchestration.workers import PolicyWorker, WorkerSpec

# Ray picks the machine's network address as the node address unless "clusters" are disabled, in
# which case it uses loopback; a local instance mas starts is single-node, so loopback is right.
_SINGLE_NODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def start_ray(address: str | None = None, *, dashboard: bool = False, num_cpus=None, num_gpus=None) -> None:
    """Join `address` when given; otherwise start a new local instance whose every server listens on
    127.0.0.1 (dashboard off unless asked). Never joins a cluster implicitly (e.g. via RAY_ADDRESS)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not address:
        os.environ[_SINGLE_NODE_ENV] = "0"
    import ray

    if ray.is_initialized():
        return
    kwargs = dict(include_dashboard=dashboard, logging_level=logging.WARNING, log_to_driver=True,
                  configure_logging=True)
    if address:
        ray.init(address=address, **kwargs)
        return
    if "ray._private.ray_constants" in sys.modules:  # imported before the variable was set
        sys.modules["ray._private.ray_constants"].ENABLE_RAY_CLUSTER = False
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, _node_ip_address="127.0.0.1",
             dashboard_host="127.0.0.1", **kwargs)


def start_worker(spec: WorkerSpec, *, use_ray: bool, options: dict | None = None):
    """A worker in this process, or a Ray actor with `options` (num_cpus, num_gpus, placement)."""
    if not use_ray:
        return LocalHandle(PolicyWorker(spec))
    import ray

    # Restarts are the controller's job: it restores the checkpoint and replays (mas/run.py).
    actor_cls = ray.remote(max_restarts=0)(PolicyWorker)
    handle = RayHandle(actor_cls.options(**(options or {"num_cpus": 1})).remote(spec))
    handle.call("ready")
    return handle


def stop_worker(handle) -> None:
    if isinstance(handle, RayHandle):
        import ray

        ray.kill(handle.actor)
