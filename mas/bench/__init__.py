"""`mas bench`: where rollout and update time goes, measured side by side against baselines in one
process on the same model (docs/performance.md).

- `workloads`: the named setups (a config's env, agents, model and sampling).
- `rollout`: the engine against two naive one-game-at-a-time loops (through our backend; with
  transformers' `model.generate`) and the model-only floor.
- `update`: one training step against a bare PyTorch step on the same batch.
- `scaling`: rollout throughput and peak memory as games and policies grow (one process per point).
- `report`: the table and JSON."""
