"""The bench's tables, as aligned text (terminal) or Markdown (docs/performance.md)."""
from __future__ import annotations


def _table(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    fmt = "  ".join("{:>%d}" % w for w in widths)
    return "\n".join([fmt.format(*headers)] + [fmt.format(*r) for r in rows])


def rollout_table(rows: list[dict], markdown: bool = False) -> str:
    headers = ["workload", "games", "engine games/s", "engine tok/s", "naive games/s", "engine s", "of which model s",
               "floor s", "engine/naive", "engine s/floor s", "engine s without KV reuse",
               "naive transformers games/s", "engine/naive transformers"]
    body = [[r["workload"], str(r["games"]), f"{r['engine']['games_per_s']:.1f}", f"{r['engine']['tokens_per_s']:.0f}",
             f"{r['naive']['games_per_s']:.2f}", f"{r['engine']['seconds']:.2f}", f"{r['engine']['model_seconds']:.2f}",
             f"{r['floor_s']:.2f}", f"{r['speedup_vs_naive']:.1f}x", f"{r['engine_vs_floor']:.2f}x",
             f"{r['engine_without_kv_reuse']['seconds']:.2f}" if "engine_without_kv_reuse" in r else "-",
             f"{r['naive_transformers']['games_per_s']:.2f}", f"{r['speedup_vs_naive_transformers']:.1f}x"] for r in rows]
    return _table(headers, body, markdown)


def update_table(rows: list[dict], markdown: bool = False) -> str:
    headers = ["workload", "sequences", "response tokens", "step s", "bare s", "bare lean s", "step/bare",
               "step/bare lean", "step tok/s", "old log-probs s", "reference s"]
    body = [[r["workload"], str(r["sequences"]), str(r["response_tokens"]), f"{r['step_s']:.3f}",
             f"{r['bare_step_s']:.3f}", f"{r['bare_lean_step_s']:.3f}", f"{r['step_vs_bare']:.2f}x",
             f"{r['step_vs_bare_lean']:.2f}x", f"{r['step_tokens_per_s']:.0f}",
             f"{r['old_logprobs_s']:.3f}", f"{r['reference_s']:.3f}"] for r in rows]
    return _table(headers, body, markdown)


def scaling_table(rows: list[dict], markdown: bool = False) -> str:
    headers = ["workload", "policies", "games", "games/s", "tok/s", "generate calls", "peak RSS GiB",
               "rollout's share MiB"]
    body = [[r["workload"], str(r["policies"]), str(r["games"]), f"{r['games_per_s']:.1f}", f"{r['tokens_per_s']:.0f}",
             str(r["generate_calls"]), f"{r['peak_rss_gb']:.2f}", f"{r['rollout_rss_gb'] * 1024:.0f}"] for r in rows]
    return _table(headers, body, markdown)


def format_report(result: dict, markdown: bool = False) -> str:
    parts = []
    for key, title, fmt in [("rollout", "(a) rollout", rollout_table), ("update", "(b) update", update_table),
                            ("scaling", "(c) scaling", scaling_table)]:
        if result.get(key):
            parts.append(f"{'### ' if markdown else ''}{title}\n\n{fmt(result[key], markdown)}")
    return "\n\n".join(parts)
