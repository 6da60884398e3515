"""`mas eval --exact` and suite rows with `exact: true`: a checkpoint (its sampling temperature and
greedy) or a bot with a defined distribution, evaluated exactly on each row's env."""
from __future__ import annotations

from pathlib import Path

from mas.evaluation.exact import EXACT_BOTS, ExactReport, exact_report, make_policy
from mas.evaluation.exact.policies import checkpoint_policies
from mas.evaluation.loading import trained_setup
from mas.games import make as make_env

__all__ = ["exact_rows"]


def exact_rows(entries, player, *, policy_dir: Path | None, temperature: float | None, max_states: int,
               where: str, progress: bool = True) -> list[ExactReport]:
    """One exact report per suite entry. `player` is a bot spec or a function returning a
    LoadedPolicy (called after every env and opponent is checked)."""
    checked = []
    for i, entry in enumerate(entries):
        at = f"{where}: envs[{i}]" if where != "--env" else "--env"
        try:
            env = make_env(entry.env)
            trained, role = trained_setup(policy_dir, env.id) if policy_dir is not None else (None, "")
            env = trained or env  # a checkpoint plays the env it was trained on as in training
            opponents = [str(o).strip() for o in entry.opponents] if entry.opponents else None
            for spec in opponents or []:
                make_policy(spec, env)  # refused here, before any model loads
            if isinstance(player, str):
                if player not in EXACT_BOTS:
                    make_policy(player, env)  # the one-line refusal (mcts:N, unknown specs)
            env.reset_explicit_chance()
        except ValueError as err:
            raise ValueError(f"{at}: {err}") from None
        checked.append((env, role, opponents))
    loaded = player() if callable(player) else None
    reports = []
    for env, role, opponents in checked:
        if loaded is not None:
            policies = list(checkpoint_policies(loaded, role, temperature, max_prompts=max_states, progress=progress))
        else:
            policies = [player]
        reports.append(exact_report(env, policies, opponents, max_states=max_states, progress=progress))
    return reports
