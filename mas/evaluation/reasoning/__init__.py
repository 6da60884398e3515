"""Reasoning benchmarks (docs/algorithms.md, "Reasoning evaluation"): loaders for local files in the
public formats, scoring with math-verify in worker processes, avg@k and pass@k, generation with a
policy alone or inside a multi-agent workflow."""
