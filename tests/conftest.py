"""Shared fixtures: one tiny model built once per session, one Ray session for every Ray test."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def tiny_path() -> str:
    from mas.agents.models import build_tiny

    return str(build_tiny("tiny-xs"))


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole test session (it takes seconds to start). It declares
    GPUs the machine lacks so that placement tests can reason about GPU bundles."""
    ray = pytest.importorskip("ray")
    from mas.orchestration.cluster import start_ray

    start_ray(num_cpus=2, num_gpus=4)
    yield ray
    ray.shutdown()
