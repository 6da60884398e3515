"""`training.schedule`: which agents learn in an iteration. `simultaneous`: all of them;
`alternating`: one group of agents at a time (`agents[].group`, else each agent its own group),
`alternate_every` iterations per group, groups in the order they first appear among the agents
(attackers and defenders taking turns)."""
from __future__ import annotations

SCHEDULES = ("simultaneous", "alternating")


def learning_agents(schedule: str, agents: list, iteration: int, every: int) -> set[str] | None:
    """The names of the agents that learn in `iteration` (None: every agent). `agents` are the
    config's agents (with `name` and `group`)."""
    if schedule == "simultaneous":
        return None
    if schedule != "alternating":
        raise ValueError(f"training.schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    groups = list(dict.fromkeys(a.group or a.name for a in agents))
    active = groups[(iteration // every) % len(groups)]
    return {a.name for a in agents if (a.group or a.name) == active}
