"""One way to call a worker whether it is a Ray actor or an in-process object: `submit` returns a
future, `gather` waits for many at once (so calls to different workers overlap under Ray)."""
from __future__ import annotations

from typing import Any


class _Ready:
    def __init__(self, value: Any):
        self.value = value


class LocalHandle:
    def __init__(self, obj: Any):
        self.obj = obj

    def submit(self, method: str, *args, **kwargs) -> _Ready:
        return _Ready(getattr(self.obj, method)(*args, **kwargs))

    def call(self, method: str, *args, **kwargs) -> Any:
        return getattr(self.obj, method)(*args, **kwargs)


class RayHandle:
    def __init__(self, actor: Any):
        self.actor = actor

    def submit(self, method: str, *args, **kwargs):
        return getattr(self.actor, method).remote(*args, **kwargs)

    def call(self, method: str, *args, **kwargs) -> Any:
        import ray

        return ray.get(self.submit(method, *args, **kwargs))


def gather(futures: list) -> list:
    pending = [f for f in futures if not isinstance(f, _Ready)]
    remote = {}
    if pending:
        import ray

        remote = dict(zip(map(id, pending), ray.get(pending)))
    return [f.value if isinstance(f, _Ready) else remote[id(f)] for f in futures]
