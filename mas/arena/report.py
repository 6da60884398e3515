"""The arena's report: per entry, the mean over seeds of every run number with its 95% t-interval;
written as OUT/arena.md (a table), OUT/arena.json (every per-run number too) and OUT/curves.png
(learning curves with a band over seeds)."""
from __future__ import annotations

import json
from pathlib import Path

from mas.arena.stats import mean_interval

INTERVAL = "95% Student t interval over seeds: mean +- t(0.975, n-1) * s / sqrt(n), s the sample std"


def _spike_rule(factor: float) -> str:
    return f"an update whose gradient norm exceeds {factor:g}x the median of that run's norms for that agent"


def aggregate(spec, runs: dict[str, list[dict]]) -> dict:
    """`runs`: label -> the collected runs (each with its `seed`) of that entry, finished ones only."""
    curve_keys = sorted({r["curve_metric"] for rs in runs.values() for r in rs if r["curve_metric"]})
    entries, missing = {}, []
    for label, entry in spec.entries.items():
        done = sorted(runs.get(label, []), key=lambda r: r["seed"])
        missing += [f"{label}/seed-{s}" for s in spec.seeds if s not in {r['seed'] for r in done}]
        keys = list(dict.fromkeys(k for r in done for k in r["metrics"]))
        entries[label] = {
            "estimator": entry.estimator,
            "overrides": entry.overrides,
            "n": len(done),
            "summary": {k: mean_interval([r["metrics"].get(k) for r in done]) for k in keys},
            "curve": _mean_curve([r["curve"] for r in done]),
            "runs": done,
        }
    return {
        "arena": spec.name, "arena_file": spec.path, "base": spec.base, "overrides": spec.overrides,
        "seeds": spec.seeds, "out": str(spec.out), "interval": INTERVAL,
        "spike": _spike_rule(spec.spike_factor), "spike_factor": spec.spike_factor,
        "auc": "trapezoid area under the learning curve divided by its iteration span (the curve's mean)",
        "curve_metric": curve_keys[0] if len(curve_keys) == 1 else curve_keys or None,
        "entries": entries, "missing": missing,
    }


def _mean_curve(curves: list[list]) -> dict:
    """Mean and t-interval at the iterations every seed with a curve evaluated."""
    curves = [c for c in curves if c]
    if not curves:
        return {"iterations": [], "mean": [], "lo": [], "hi": []}
    common = sorted(set.intersection(*({int(i) for i, _ in c} for c in curves)))
    by_seed = [{int(i): v for i, v in c} for c in curves]
    stats = [mean_interval([values[i] for values in by_seed]) for i in common]
    return {"iterations": common, "mean": [s["mean"] for s in stats], "lo": [s["lo"] for s in stats],
            "hi": [s["hi"] for s in stats]}


# --- table ------------------------------------------------------------------------------------

def columns(result: dict) -> list[str]:
    """Metric keys in table order: final scores, AUC, per agent max norm and spikes, wall time."""
    seen = list(dict.fromkeys(k for e in result["entries"].values() for k in e["summary"]))
    finals = [k for k in seen if k.startswith("final/")]
    agents = list(dict.fromkeys(k.split("/", 1)[1] for k in seen if k.startswith(("grad_norm_max/", "grad_spikes/"))))
    grads = [k for a in agents for k in (f"grad_norm_max/{a}", f"grad_spikes/{a}") if k in seen]
    return finals + [k for k in ("auc",) if k in seen] + grads + [k for k in ("wall_s",) if k in seen]


def title(key: str, result: dict) -> str:
    if key == "final/accuracy":
        return "final accuracy"
    if key.startswith("final/"):
        return f"final non-loss vs {key.split('/')[1]}"
    if key == "auc":
        metric = result["curve_metric"]
        return f"AUC of {metric if isinstance(metric, str) else 'eval curve'}"
    if key.startswith("grad_norm_max/"):
        return f"grad-norm max ({key.split('/', 1)[1]})"
    if key.startswith("grad_spikes/"):
        return f"spikes >{result['spike_factor']:g}x median ({key.split('/', 1)[1]})"
    if key == "wall_s":
        return "wall s"
    return key


def _number(key: str, x: float) -> str:
    if key.startswith("grad_norm_max/"):
        return f"{x:.3g}"
    if key.startswith("grad_spikes/"):
        return f"{x:.1f}"
    if key == "wall_s":
        return f"{x:.0f}"
    return f"{x:.3f}"


def cell(key: str, stat: dict | None) -> str:
    if not stat or stat["mean"] is None:
        return "-"
    text = _number(key, stat["mean"])
    if stat["lo"] is not None:
        text += f" [{_number(key, stat['lo'])}, {_number(key, stat['hi'])}]"
    return text


def markdown(result: dict) -> str:
    keys = columns(result)
    head = ["entry", "estimator", "n", *(title(k, result) for k in keys)]
    lines = [f"| {' | '.join(head)} |", f"|{'|'.join('---' for _ in head)}|"]
    for label, entry in result["entries"].items():
        if not entry["n"]:
            continue  # listed under "Not finished"
        cells = [label, entry["estimator"], str(entry["n"]), *(cell(k, entry["summary"].get(k)) for k in keys)]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def document(result: dict) -> str:
    shared = ", ".join(f"{k}={json.dumps(v)}" for k, v in result["overrides"].items()) or "none"
    parts = [
        f"# Arena `{result['arena']}`", "",
        f"Base config `{result['base']}`; shared overrides: {shared}; seeds {result['seeds']}.", "",
        markdown(result), "",
        f"Each cell: mean over the n finished seeds [{INTERVAL}]; one seed: the value alone.",
        f"AUC: {result['auc']}. Spike: {result['spike']}.",
    ]
    if result["missing"]:
        parts += ["", f"Not finished: {', '.join(result['missing'])}."]
    return "\n".join(parts) + "\n"


# --- files ------------------------------------------------------------------------------------

def plot_curves(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    colors = plt.get_cmap("tab20" if len(result["entries"]) > 10 else "tab10")
    for i, (label, entry) in enumerate(result["entries"].items()):
        curve = entry["curve"]
        if not curve["iterations"]:
            continue
        color = colors(i % colors.N)
        ax.plot(curve["iterations"], curve["mean"], label=f"{label} (n={entry['n']})", color=color, lw=1.6)
        if all(x is not None for x in curve["lo"]):
            ax.fill_between(curve["iterations"], curve["lo"], curve["hi"], color=color, alpha=0.15, lw=0)
    means = [m for e in result["entries"].values() for m in e["curve"]["mean"]]
    if means and all(0.0 <= m <= 1.0 for m in means):  # a rate: keep the axis on [0, 1]; bands are cut there
        ax.set_ylim(-0.02, 1.02)
    metric = result["curve_metric"]
    ax.set_xlabel("iteration")
    ax.set_ylabel(metric if isinstance(metric, str) else "eval metric")
    ax.set_title(f"arena {result['arena']}: mean over seeds, band = 95% t-interval")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(result: dict, out: Path) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "arena.md", "json": out / "arena.json", "png": out / "curves.png"}
    paths["markdown"].write_text(document(result))
    paths["json"].write_text(json.dumps(result, indent=1) + "\n")
    plot_curves(result, paths["png"])
    return paths
