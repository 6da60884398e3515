"""Read one finished run of an arena: its final score (`eval_final.json`), its learning curve and
per-agent gradient norms (`summary.json`'s history), its wall time (`arena_time.json`)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from mas.arena.stats import curve_auc, spike_count

TIME_FILE = "arena_time.json"
# The learning curve when the arena file names none: workflows' accuracy, else non-loss vs random.
CURVE_PREFERENCE = ("eval/team/accuracy", "eval/random/non_loss")
_GRAD_KEY = re.compile(r"^train/([^/]+)/grad_norm(?:/(.+))?$")


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def curve_metric(history: list[dict], wanted: str | None = None) -> str | None:
    """The history key of the learning curve: `wanted`, else the first of CURVE_PREFERENCE present,
    else the first eval/<opponent>/non_loss."""
    keys = {k for row in history for k in row}
    if wanted:
        return wanted if wanted in keys else None
    for key in CURVE_PREFERENCE:
        if key in keys:
            return key
    rates = sorted(k for k in keys if k.startswith("eval/") and k.endswith("/non_loss"))
    return rates[0] if rates else None


def final_scores(eval_final: dict | None) -> dict[str, float]:
    """The `trained` row: accuracy for a workflow, the non-loss rate per final opponent for a game."""
    trained = (eval_final or {}).get("trained")
    if not isinstance(trained, dict):
        return {}
    if "accuracy" in trained:
        return {"final/accuracy": float(trained["accuracy"])}
    return {f"final/{opponent}/non_loss": float(result["non_loss"])
            for opponent, result in trained.items() if isinstance(result, dict) and "non_loss" in result}


def agent_policies(run_dir: Path) -> dict[str, str]:
    """agent -> policy, from the run's resolved config.yaml (empty if it cannot be read)."""
    try:
        cfg = yaml.safe_load((Path(run_dir) / "config.yaml").read_text()) or {}
        return {a["name"]: a["policy"] for a in cfg.get("agents") or []}
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return {}


def grad_norm_series(history: list[dict], agents: dict[str, str]) -> dict[str, list[float]]:
    """Per agent, its gradient norm at each update: `train/<policy>/grad_norm/<agent>` where agents
    share a policy (the trainer's per-agent diagnostic), else the policy's own `train/<policy>/grad_norm`
    when the agent is its only one. A policy whose agents have no own norms is listed by its name."""
    per_key: dict[str, list[float]] = {}
    for row in sorted(history, key=lambda r: r.get("iteration", 0)):
        for key, value in row.items():
            if _GRAD_KEY.match(key) and value is not None:
                per_key.setdefault(key, []).append(float(value))
    out: dict[str, list[float]] = {}
    covered: set[str] = set()
    for key, values in per_key.items():
        policy, agent = _GRAD_KEY.match(key).groups()
        if agent is not None:
            out[agent] = values
            covered.add(policy)
    for key, values in per_key.items():
        policy, agent = _GRAD_KEY.match(key).groups()
        if agent is None and policy not in covered:
            mine = [a for a, p in agents.items() if p == policy]
            out[mine[0] if len(mine) == 1 else policy] = values
    return dict(sorted(out.items()))


def wall_seconds(run_dir: Path, summary: dict) -> float | None:
    timing = read_json(Path(run_dir) / TIME_FILE)
    if timing and timing.get("seconds") is not None:
        return float(timing["seconds"])
    return summary.get("total_seconds")


def collect_run(run_dir: Path, curve: str | None = None, spike_factor: float = 3.0) -> dict | None:
    """Every number of one run, or None when it has not finished (no summary.json)."""
    run_dir = Path(run_dir)
    summary = read_json(run_dir / "summary.json")
    if summary is None:
        return None
    history = summary.get("history") or []
    metric = curve_metric(history, curve)
    points = [[int(row["iteration"]), float(row[metric])] for row in history
              if metric and row.get(metric) is not None] if metric else []
    points.sort()
    metrics: dict[str, float | None] = dict(final_scores(read_json(run_dir / "eval_final.json")))
    metrics["auc"] = curve_auc(points)
    for agent, norms in grad_norm_series(history, agent_policies(run_dir)).items():
        metrics[f"grad_norm_max/{agent}"] = max(norms) if norms else None
        metrics[f"grad_spikes/{agent}"] = float(spike_count(norms, spike_factor))
    metrics["wall_s"] = wall_seconds(run_dir, summary)
    return {"run_dir": str(run_dir), "curve_metric": metric, "curve": points, "metrics": metrics}
