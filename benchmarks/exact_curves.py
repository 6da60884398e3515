"""Exact learning curves of runs trained with `eval.exact: true`, and what each final policy does.

    python benchmarks/exact_curves.py RUN_DIR [RUN_DIR ...] [--table] [--plot FILE.png [--hline Y]]
        [--json FILE.json]

Per run: the exact figures logged at each evaluation (NashConv and payoffs, or non-loss, of the
sampled and the greedy policy), read from its TensorBoard events; then the final checkpoint
evaluated exactly again, with its action probabilities at every information state (imperfect-
information games), which is where a collapse onto one action shows first."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

CURVES = ("exact/sampled/nash_conv", "exact/greedy/nash_conv", "exact/sampled/random/mean/payoff",
          "exact/sampled/cfr/mean/payoff", "exact/sampled/random/mean/non_loss", "exact/greedy/random/mean/non_loss")


def curves(run: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(run))
    acc.Reload()
    have = acc.Tags()["scalars"]
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in CURVES if tag in have}


def final_policy(run: Path) -> dict:
    """The final checkpoint's exact report and, per information state, its action probabilities."""
    from mas.evaluation.exact import ExactEvaluation
    from mas.evaluation.exact.policies import checkpoint_policies
    from mas.evaluation.exact.values import tabular
    from mas.evaluation.loading import load_policy, policy_folder, trained_setup

    folder = policy_folder(str(run / "final"))
    loaded = load_policy(str(folder), constrained=True)
    from omegaconf import OmegaConf

    env_id = OmegaConf.load(run / "config.yaml").env.name
    env, role = trained_setup(folder, env_id)
    policies = list(checkpoint_policies(loaded, role, max_prompts=1_000_000))
    exact = ExactEvaluation(env, policies)
    report = exact.report()
    out = {"report": report.to_json()}
    if not env.perfect_information:
        table = tabular(exact.tree, policies[0])
        names = {}
        for node in exact.tree.decisions():
            names.setdefault(exact.tree.info[node], dict(zip(exact.tree.action_ids[node], exact.tree.actions[node])))
        out["policy"] = {info: {names[info][a]: round(p, 3) for a, p in row} for info, row in sorted(table.items())}
    return out


def table_row(run: Path, entry: dict) -> str | None:
    """A markdown row for an imperfect-information run: NashConv at the start, the end and its
    lowest (with the iteration), the final policy's exact payoffs, greedy too, and training time."""
    nash = entry["curves"].get("exact/sampled/nash_conv")
    final = json.loads((run / "eval_final.json").read_text()).get("exact", {}).get("trained") \
        if (run / "eval_final.json").exists() else None
    if not nash or not final:
        return None
    seconds = json.loads((run / "summary.json").read_text()).get("train_seconds", float("nan"))
    low_step, low = min(nash, key=lambda p: p[1])
    cells = [run.name, f"{nash[0][1]:.3f}", f"**{nash[-1][1]:.3f}**", f"{low:.3f} ({low_step})"]
    for kind in ("T=1", "greedy"):
        name = next(n for n in final["policies"] if n.endswith(f"({kind})"))
        payoff = final["policies"][name]
        cells += [f"{final['nash_conv'][name]:.3f}"] if kind == "greedy" else []
        cells += [f"{payoff[o]['mean']['payoff']:+.3f}" for o in ("random", "cfr")]
    cells.append(f"{seconds / 60:.1f}")
    return "| " + " | ".join(cells) + " |"


def curve_table(results: dict, tag: str) -> str:
    """One row per run: `tag` at each logged iteration."""
    steps = sorted({s for entry in results.values() for s, _ in entry["curves"].get(tag, [])})
    lines = ["| iteration | " + " | ".join(map(str, steps)) + " |", "|---" * (len(steps) + 1) + "|"]
    for name, entry in results.items():
        values = dict(entry["curves"].get(tag, []))
        lines.append(f"| {name} | " + " | ".join(f"{values[s]:.2f}" if s in values else "" for s in steps) + " |")
    return "\n".join(lines)


TABLE_HEAD = ("| run | NashConv start | NashConv end | lowest (iteration) | payoff vs random | payoff vs CFR "
              "| greedy NashConv | greedy vs random | greedy vs CFR | training min |\n" + "|---" * 10 + "|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--plot", default=None, help="write the NashConv (or non-loss) curves here")
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--table", action="store_true", help="a markdown table of the runs' exact figures")
    parser.add_argument("--hline", type=float, default=None, help="a dashed reference line, e.g. a target")
    parser.add_argument("--no-final", action="store_true", help="only the logged curves")
    args = parser.parse_args()
    results = {}
    for run in map(Path, args.runs):
        entry = {"curves": curves(run)}
        for tag, points in entry["curves"].items():
            print(f"{run.name} {tag}: " + " ".join(f"{s}:{v:.3f}" for s, v in points))
        if not args.no_final and (run / "final").exists():
            entry["final"] = final_policy(run)
            for info, row in entry["final"].get("policy", {}).items():
                print(f"  {info!r}: {row}")
        results[run.name] = entry
    if args.table:
        rows = [table_row(Path(run), results[Path(run).name]) for run in args.runs]
        print("\n" + TABLE_HEAD + "\n" + "\n".join(r for r in rows if r))
        print("\n" + curve_table(results, "exact/sampled/nash_conv"))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for name, entry in results.items():
            tag = next((t for t in ("exact/sampled/nash_conv", "exact/sampled/random/mean/non_loss")
                        if t in entry["curves"]), None)
            if tag:
                steps, values = zip(*entry["curves"][tag])
                ax.plot(steps, values, marker="o", label=name)
                ax.set_ylabel(tag.split("/")[-1] + " (exact, sampling temperature)")
        if args.hline is not None:
            ax.axhline(args.hline, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
