"""Placement: split and colocate put each policy worker in the bundles and GPU fractions the config
says (checked from inside the real worker processes, in a Ray session that declares 4 GPUs the
machine lacks); requests larger than the cluster are refused up front; every socket of the Ray
instance mas starts listens on loopback."""
from __future__ import annotations

import os

import psutil
import pytest

from mas.config import ConfigError
from mas.validation import load_config
from mas.orchestration.cluster import start_worker, stop_worker
from mas.orchestration.scheduler import ResourcePool, check_capacity, plan_placement
from mas.orchestration.topology import worker_spec

LOOP = "configs/math_loop.yaml"


def _cfg(strategy: str, solver: tuple[float, float], verifier: tuple[float, float]):
    return load_config(LOOP, [
        f"scheduling.strategy={strategy}",
        f"policies.solver_model.resources.num_cpus={solver[0]}", f"policies.solver_model.resources.num_gpus={solver[1]}",
        f"policies.verifier_model.resources.num_cpus={verifier[0]}",
        f"policies.verifier_model.resources.num_gpus={verifier[1]}",
    ])


def test_split_plan_gives_each_policy_its_own_bundle():
    plan = plan_placement(_cfg("split", (0.5, 1), (0.25, 0.5)))
    assert plan.bundles == [{"CPU": 0.5, "GPU": 1}, {"CPU": 0.25, "GPU": 0.5}]
    assert [(p.bundle, p.num_cpus, p.num_gpus) for p in plan.placements.values()] == [(0, 0.5, 1), (1, 0.25, 0.5)]
    assert plan.totals() == {"CPU": 0.75, "GPU": 1.5}


def test_colocate_plan_time_shares_one_gpu_bundle():
    plan = plan_placement(_cfg("colocate", (0.5, 1), (0.25, 1)))
    assert plan.bundles == [{"CPU": 0.75, "GPU": 1.0}]
    assert [(p.bundle, p.num_cpus, p.num_gpus) for p in plan.placements.values()] == [(0, 0.5, 0.5), (0, 0.25, 0.5)]
    cpu_only = plan_placement(_cfg("colocate", (0.5, 0), (0.5, 0)))
    assert cpu_only.bundles == [{"CPU": 1.0}]


def test_colocate_refuses_more_than_one_gpu_per_policy():
    with pytest.raises(ConfigError, match="at most 1"):
        plan_placement(_cfg("colocate", (0.5, 2), (0.5, 1)))


def _placements(cfg, tiny_path):
    plan = plan_placement(cfg)
    check_capacity(plan, {"CPU": 2.0, "GPU": 4.0})
    pool = ResourcePool(plan)
    workers = {}
    try:
        for name in cfg.policies:
            spec = worker_spec(cfg, name, tiny_path)
            workers[name] = start_worker(spec, use_ray=True, options=pool.actor_options(name))
        return pool.group.id.hex(), {name: w.call("placement") for name, w in workers.items()}
    finally:
        for w in workers.values():
            stop_worker(w)
        pool.remove()


def test_workers_land_where_split_says(ray_session, tiny_path):
    group, where = _placements(_cfg("split", (0.5, 1), (0.5, 0.5)), tiny_path)
    solver, verifier = where["solver_model"], where["verifier_model"]
    assert solver["placement_group"] == verifier["placement_group"] == group
    assert solver["resources"] == {"CPU": 0.5, "GPU": 1.0}
    assert verifier["resources"] == {"CPU": 0.5, "GPU": 0.5}
    assert len(solver["gpu_ids"]) == 1 and len(verifier["gpu_ids"]) == 1
    assert solver["gpu_ids"] != verifier["gpu_ids"]  # separate devices: the policies train side by side
    assert solver["pid"] != verifier["pid"]
    assert solver["torch_threads"] == 1  # the config's thread count, not Ray's default


def test_workers_land_where_colocate_says(ray_session, tiny_path):
    group, where = _placements(_cfg("colocate", (0.5, 1), (0.5, 1)), tiny_path)
    solver, verifier = where["solver_model"], where["verifier_model"]
    assert solver["placement_group"] == verifier["placement_group"] == group
    assert solver["resources"] == verifier["resources"] == {"CPU": 0.5, "GPU": 0.5}
    assert solver["gpu_ids"] == verifier["gpu_ids"] and len(solver["gpu_ids"]) == 1  # one shared device


def test_a_request_larger_than_the_cluster_is_refused(ray_session):
    cfg = _cfg("split", (0.5, 3), (0.5, 2))  # 5 GPUs; the session declares 4
    plan = plan_placement(cfg)
    with pytest.raises(ConfigError, match=r"needs 5 GPU .* has 4"):
        check_capacity(plan, ray_session.cluster_resources(), "the test cluster")
    with pytest.raises(ConfigError, match="could not reserve"):
        ResourcePool(plan, timeout_s=2)  # Ray itself cannot place it either


def _ray_processes(ray) -> list[psutil.Process]:
    """The driver, every process started for this Ray session, and their children (workers)."""
    session = ray._private.worker._global_node.get_session_dir_path()
    roots = [p for p in psutil.process_iter(["cmdline"]) if session in " ".join(p.info["cmdline"] or [])]
    found = {os.getpid(): psutil.Process()}
    for p in roots:
        found[p.pid] = p
        for child in p.children(recursive=True):
            found[child.pid] = child
    return list(found.values())


def test_every_listening_socket_is_on_loopback(ray_session, tiny_path):
    worker = start_worker(worker_spec(load_config(LOOP), "verifier_model", tiny_path), use_ray=True,
                          options={"num_cpus": 0.5})
    try:
        listening = []
        for proc in _ray_processes(ray_session):
            try:
                conns = proc.net_connections(kind="inet")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            listening += [(proc.name(), c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
        names = {name for name, _, _ in listening}
        assert any("gcs_server" in n for n in names) and any("raylet" in n for n in names), names
        assert any(n.startswith("ray::PolicyWorker") for n in names), names
        exposed = [s for s in listening if s[1] not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")]
        assert not exposed, exposed
    finally:
        stop_worker(worker)
