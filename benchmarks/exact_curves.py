"""Exact learning curves of runs trained with `eval.exact: true`, and what each final policy does.

    python benchmarks/exact_curves.py RUN_DIR [RUN_DIR ...] [--plot FILE.png [--hline Y]] [--json FILE.json]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--plot", default=None, help="write the NashConv (or non-loss) curves here")
    parser.add_argument("--json", dest="json_path", default=None)
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
