"""Named benchmark workloads: a run config (plus overrides) gives the env, the agent on each seat,
the model and the sampling settings, exactly as `mas train` would build them, in this process."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mas.agents.agent import Agent
from mas.validation import load_config
from mas.games import env_spec, make as make_env
from mas.orchestration.topology import build_agents, seat_agents, worker_spec
from mas.orchestration.workers import PolicyWorker

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@dataclass(frozen=True)
class Workload:
    name: str
    config: str  # a file under configs/
    overrides: tuple[str, ...] = ()
    needs: str | None = None  # a pretrained model that must be prepared first


# The quickstart's tiny model, compact prompts, temperature and constrained answers, self-play only
# (every move is generated); Kuhn poker under the same settings.
WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload("tictactoe-tiny", "quickstart.yaml", ("rollout.opponents={}",)),
        Workload("kuhn-tiny", "quickstart.yaml", ("env.name=kuhn_poker", "rollout.opponents={}")),
        # each seat's chat grows turn by turn: the case for KV-cache reuse
        Workload("tictactoe-tiny-history", "quickstart.yaml", ("env.history=true", "rollout.opponents={}")),
        Workload("tictactoe-smollm2", "smollm2_tictactoe.yaml", ("rollout.opponents={}",),
                 needs="smollm2-135m-instruct"),
    ]
}


@dataclass
class Setup:
    """One workload built: its env, the agent per seat, and the policy's worker (model, backend,
    trainer) in this process."""

    workload: Workload
    env: object
    seats: list[Agent]
    worker: PolicyWorker

    @property
    def agent(self) -> Agent:
        return self.seats[0]


def available(name: str) -> bool:
    """Whether the workload can run here (a pretrained model it needs is installed)."""
    needs = WORKLOADS[name].needs
    if needs is None:
        return True
    from mas.agents.pretrained import gguf_path

    try:
        gguf_path(needs)
    except ValueError:
        return False
    return True


def build(name: str, *, threads: int | None = None, extra: tuple[str, ...] = ()) -> Setup:
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    workload = WORKLOADS[name]
    cfg = load_config(str(CONFIGS / workload.config), list(workload.overrides) + list(extra))
    env = make_env(env_spec(cfg))
    agents = build_agents(cfg)
    seats = seat_agents(cfg, agents, env)
    policy = seats[0].policy
    from mas.agents.models import resolve

    spec = worker_spec(cfg, policy, resolve(cfg.policies[policy].model, cfg.policies[policy].seed))
    if threads is not None:
        spec.threads = threads
    setup = Setup(workload, env, seats, PolicyWorker(spec))
    return setup
