"""One policy's update: pack turns into sequences, recompute old (and reference) log-probs once in eval
mode on the exact sampled ids, then PPO-style optimizer steps with the configured policy loss."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from mas.training.logprobs import entropy_from_logprobs, processed_logprobs
from mas.training.losses import LossConfig, policy_loss
from mas.training.packing import PackedSequence, micro_batches, pack_turns
from mas.records import Turn

# What a sequential pool's ratio is measured against: the log-probs recorded before the pool's
# steps, or the behaviour policy that sampled the turns
RATIO_BASES = ("record", "behaviour")


@dataclass
class UpdateSettings:
    ppo_epochs: int = 1
    mini_batches: int = 1  # optimizer steps per epoch
    micro_batch_tokens: int = 16384  # padded tokens per forward/backward
    agent_grad_norm_every: int = 1  # updates between per-agent gradient norms (0 = never)
    merge_duplicates: bool = True  # identical sequences share one forward (the loss is unchanged)


def _response_logits(model, batch: list[PackedSequence], device) -> torch.Tensor:
    """Logits `[N, V]` that predict each response token of `batch`, in order, computed only where
    needed (the LM head runs on the N target positions, not on every position)."""
    width = max(len(s.input_ids) for s in batch)
    pad = model.config.pad_token_id or 0
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    rows, cols = [], []
    for b, seq in enumerate(batch):
        ids[b, : len(seq.input_ids)] = torch.tensor(seq.input_ids)
        mask[b, : len(seq.input_ids)] = 1
        rows.extend([b] * len(seq.target_pos))
        cols.extend(p - 1 for p in seq.target_pos)
    ids, mask = ids.to(device), mask.to(device)
    decoder = getattr(model, "model", None)
    if decoder is None or getattr(model.config, "final_logit_softcapping", None):
        logits = model(input_ids=ids, attention_mask=mask).logits[rows, cols]
    else:
        hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
        logits = model.get_output_embeddings()(hidden[rows, cols])
    return logits


def _target_logprobs(model, batch: list[PackedSequence], device, truncation=(0, 1.0)):
    logits = _response_logits(model, batch, device)
    targets = torch.tensor([t for s in batch for t in (s.input_ids[p] for p in s.target_pos)], device=device)
    temps = torch.tensor([t for s in batch for t in s.temperature], device=device)
    allowed = None
    flat_allowed = [a for s in batch for a in s.allowed]
    if any(a is not None for a in flat_allowed):
        rows = [i for i, ids in enumerate(flat_allowed) if ids is not None for _ in ids]
        cols = [t for ids in flat_allowed if ids is not None for t in ids]
        allowed = torch.zeros(logits.shape, dtype=torch.bool, device=device)
        allowed[torch.tensor(rows, device=device), torch.tensor(cols, device=device)] = True
    logp_all = processed_logprobs(logits, temps, top_k=truncation[0], top_p=truncation[1], allowed=allowed)
    return logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1), logp_all


def duplicate_groups(sequences: list[PackedSequence], indices, merge: bool = True) -> dict[int, list[int]]:
    """The first of each set of identical sequences among `indices` -> all of that set, in order
    (with `merge` off, every sequence is a set of its own)."""
    first_of: dict[tuple, int] = {}
    groups: dict[int, list[int]] = {}
    for i in indices:
        first = first_of.setdefault(sequences[i].identity, i) if merge else i
        groups.setdefault(first, []).append(i)
    return groups


def _token_advantages(sequences, copy_sets, adv: torch.Tensor):
    """Per response token of the first sequence of each copy set: its advantage, or, when a set has
    several copies or the advantages are blends, the (weight, advantage) columns of every copy as
    (advantages [n, k], mix [n, k]) for `policy_loss`."""
    firsts = [copies[0] for copies in copy_sets]
    if adv.dim() == 1 and all(len(copies) == 1 for copies in copy_sets):
        return adv[[r for i in firsts for r in sequences[i].target_row]], None
    blocks = []  # per copy set: [tokens, columns, 2] (weight, advantage) pairs, each copy's columns side by side
    for copies in copy_sets:
        a = adv[torch.tensor([sequences[c].target_row for c in copies])]  # [copies, tokens] (or [.., k, 2])
        if a.dim() == 2:
            a = torch.stack([torch.ones_like(a), a], -1).unsqueeze(2)  # one column of weight 1 per copy
        blocks.append(a.permute(1, 0, 2, 3).reshape(a.shape[1], -1, 2))
    width = max(b.shape[1] for b in blocks)
    padded = torch.cat([torch.nn.functional.pad(b, (0, 0, 0, width - b.shape[1])) for b in blocks])  # weight 0
    return padded[..., 1], padded[..., 0]


class PolicyTrainer:
    def __init__(self, model, strategy, loss: LossConfig, settings: UpdateSettings, *, ref_model=None,
                 reference_context=None, device="cpu", truncation=(0, 1.0)):
        self.model = model
        self.strategy = strategy
        self.loss_cfg = loss
        self.settings = settings
        self.ref_model = ref_model
        # or: a context manager factory under which `model` itself is the reference (LoRA adapters off)
        self.reference_context = reference_context
        self.device = torch.device(device)
        self.truncation = truncation
        self.updates = 0  # updates done by this trainer (diagnostics cadence)

    @torch.no_grad()
    def _score(self, model, sequences):
        """Per sequence, its response tokens' log-probs and entropies; identical sequences are
        scored once."""
        was_training = model.training
        model.eval()
        first = duplicate_groups(sequences, range(len(sequences)), self.settings.merge_duplicates)
        unique = [sequences[i] for i in first]
        out_lp, out_ent = [None] * len(sequences), [None] * len(sequences)
        index = {id(s): i for i, s in enumerate(unique)}
        scored_lp, scored_ent = [None] * len(unique), [None] * len(unique)
        for batch in micro_batches(unique, self.settings.micro_batch_tokens):
            lp, lp_all = _target_logprobs(model, batch, self.device, self.truncation)
            ent = entropy_from_logprobs(lp_all)
            offset = 0
            for seq in batch:
                n = len(seq.target_pos)
                scored_lp[index[id(seq)]] = lp[offset : offset + n]
                scored_ent[index[id(seq)]] = ent[offset : offset + n]
                offset += n
        for k, copies in enumerate(first.values()):
            for i in copies:
                out_lp[i], out_ent[i] = scored_lp[k], scored_ent[k]
        model.train(was_training)
        return out_lp, out_ent

    def _reference_logprobs(self, sequences):
        if self.ref_model is not None:
            return self._score(self.ref_model, sequences)[0]
        if self.reference_context is not None:
            with self.reference_context():
                return self._score(self.model, sequences)[0]
        return None

    def update(self, turns: list[Turn], advantages: list, seed: int) -> dict[str, float]:
        """PPO epochs over `turns`. `advantages` holds a float per turn, or per turn a list of
        (weight, advantage) pairs whose clipped losses are blended with those weights (COPO)."""
        sequences = pack_turns(turns)
        if not sequences:
            return {}
        # Sort by length so micro-batches pad little; the shuffle below decides optimizer steps.
        sequences.sort(key=lambda s: len(s.input_ids))
        old_lp, entropy = self._score(self.model, sequences)
        ref_lp = self._reference_logprobs(sequences)
        behaviour = torch.tensor([x for s in sequences for x in s.behaviour_logp])
        old_flat = torch.cat(old_lp).cpu()
        metrics = {
            "logprob_mismatch": float((old_flat - behaviour).abs().mean()),
            "logprob_mismatch_max": float((old_flat - behaviour).abs().max()),
            "entropy": float(torch.cat(entropy).mean()),
            "response_tokens": float(len(old_flat)),
            "sequences": float(len(sequences)),
        }
        adv = torch.as_tensor(advantages, dtype=torch.float32)
        generator = torch.Generator().manual_seed(int(seed) & 0x7FFF_FFFF_FFFF_FFFF)
        self.model.train()
        every = self.settings.agent_grad_norm_every
        agent_of = [turns[s.target_row[0]].agent for s in sequences]
        # One agent on this policy: its norm is the update's own grad_norm; skip the extra pass.
        if every and self.updates % every == 0 and self.strategy.plain_backward and len(set(agent_of)) > 1:
            metrics.update(self.agent_grad_norms(sequences, agent_of, old_lp, ref_lp, adv))
        self.updates += 1
        sums: dict[str, float] = {}
        steps = 0
        for _ in range(self.settings.ppo_epochs):
            order = torch.randperm(len(sequences), generator=generator).tolist()
            groups = [order[i :: self.settings.mini_batches] for i in range(self.settings.mini_batches)]
            for group in groups:
                if not group:
                    continue
                step_metrics = self._optimizer_step(sequences, group, old_lp, ref_lp, adv)
                steps += 1
                for k, v in step_metrics.items():
                    sums[k] = sums.get(k, 0.0) + v
        metrics.update({k: v / max(steps, 1) for k, v in sums.items()})
        metrics["optimizer_steps"] = float(steps)
        return metrics

    def token_logprobs(self, turns: list[Turn]) -> list[list[float]]:
        """Current log-probs (eval mode, the training distribution) of each turn's response tokens."""
        out: list[list[float]] = [[] for _ in turns]
        sequences = pack_turns(turns)
        for seq, lp in zip(sequences, self._score(self.model, sequences)[0]):
            for row, value in zip(seq.target_row, lp.tolist()):
                out[row].append(value)
        return out

    def update_pool(self, turns: list[Turn], advantages: list[float], *, steps: int = 1,
                    ratio_base: str = "record") -> dict:
        """One pool of a sequential schedule (mas/training/sequential.py): record the pool's log-probs,
        take `steps` optimizer steps on all of it with the clipped sequence-ratio objective (the
        advantages already carry the factor P), then recompute the log-probs. Returns metrics and,
        per turn, the sum over its response tokens of (log pi_new - log pi_base) and their count,
        base = the record (or the behaviour log-probs with `ratio_base: behaviour`)."""
        sequences = pack_turns(turns)
        log_ratio_sum, tokens = [0.0] * len(turns), [0] * len(turns)
        if not sequences:
            return {"metrics": {}, "log_ratio_sum": log_ratio_sum, "tokens": tokens}
        sequences.sort(key=lambda s: len(s.input_ids))
        record, _ = self._score(self.model, sequences)
        if ratio_base == "behaviour":
            base = [torch.tensor(s.behaviour_logp, device=self.device) for s in sequences]
        elif ratio_base == "record":
            base = record
        else:
            raise ValueError(f"ratio_base must be record or behaviour, got {ratio_base!r}")
        ref_lp = self._reference_logprobs(sequences)
        adv = torch.as_tensor(advantages, dtype=torch.float32)
        if adv.dim() != 1:
            raise ValueError("a sequential update takes one advantage per turn, not a blend of several")
        loss_cfg = replace(self.loss_cfg, ratio="sequence")
        self.model.train()
        sums: dict[str, float] = {}
        merge = ratio_base != "behaviour"  # behaviour log-probs are each copy's own: no merging then
        for _ in range(steps):
            for k, v in self._optimizer_step(sequences, list(range(len(sequences))), base, ref_lp, adv, loss_cfg,
                                             merge=merge).items():
                sums[k] = sums.get(k, 0.0) + v / steps
        new, _ = self._score(self.model, sequences)
        for seq, lp_new, lp_base in zip(sequences, new, base):
            for row, delta in zip(seq.target_row, (lp_new - lp_base).tolist()):
                log_ratio_sum[row] += delta
                tokens[row] += 1
        return {"metrics": sums, "log_ratio_sum": log_ratio_sum, "tokens": tokens}

    def _optimizer_step(self, sequences, group, old_lp, ref_lp, adv, loss_cfg=None, merge=True) -> dict[str, float]:
        self.strategy.zero_grad()
        totals = self._accumulate(sequences, group, old_lp, ref_lp, adv, loss_cfg, self.strategy.backward, merge)
        totals["grad_norm"] = self.strategy.step()
        return totals

    def _accumulate(self, sequences, group, old_lp, ref_lp, adv, loss_cfg, backward, merge=True) -> dict[str, float]:
        """The aggregated loss over the sequences `group`, micro-batch by micro-batch, each part
        passed to `backward`; returns the loss and its metrics. Identical sequences (a small game's
        few distinct prompts and answers) run one forward and backward, carrying every copy's
        advantages: the loss is the same as with each copy on its own."""
        chosen = sorted(group, key=lambda i: len(sequences[i].input_ids))
        token_total = sum(len(sequences[i].target_pos) for i in chosen)
        row_total = len({r for i in chosen for r in sequences[i].target_row})
        copies_of = duplicate_groups(sequences, chosen, merge and self.settings.merge_duplicates)
        totals: dict[str, float] = {}
        index = {id(sequences[i]): i for i in copies_of}
        cfg = loss_cfg or self.loss_cfg
        for batch in micro_batches([sequences[i] for i in copies_of], self.settings.micro_batch_tokens):
            ids = [index[id(s)] for s in batch]
            logp, logp_all = _target_logprobs(self.model, batch, self.device, self.truncation)
            entropy = entropy_from_logprobs(logp_all) if cfg.entropy_coef > 0 else None
            old = torch.cat([old_lp[i] for i in ids])
            rows = [r for s in batch for r in s.target_row]
            local = {r: j for j, r in enumerate(dict.fromkeys(rows))}
            row_adv, mix = _token_advantages(sequences, [copies_of[i] for i in ids], adv)
            row_adv = row_adv.to(self.device)
            mix = None if mix is None else mix.to(self.device)
            loss, info = policy_loss(
                logp,
                old,
                row_adv,
                torch.tensor([local[r] for r in rows], device=self.device),
                cfg,
                ref_logp=torch.cat([ref_lp[i] for i in ids]) if ref_lp is not None else None,
                token_normalizer=token_total,
                row_normalizer=row_total,
                mix=mix,
                entropy=entropy,
            )
            backward(loss)
            weight = sum(len(sequences[c].target_pos) for i in ids for c in copies_of[i]) / token_total
            # k3 estimate of KL(old || current) on these tokens: how far the update has moved
            log_ratio = (logp.detach() - old).clamp(-10, 10)
            info = {**info, "approx_kl": float((log_ratio.exp() - 1 - log_ratio).mean())}
            totals["loss"] = totals.get("loss", 0.0) + float(loss.detach())
            for k, v in info.items():
                totals[k] = totals.get(k, 0.0) + v * weight
        return totals

    def agent_grad_norms(self, sequences, agent_of, old_lp, ref_lp, adv) -> dict[str, float]:
        """Per agent, the norm of the gradient of the same aggregated loss over that agent's rows
        alone (Dr. MAS's diagnostic), at the weights the update starts from; also when agents share
        this policy. Costs one more forward and backward over the batch."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        norms = {}
        for agent in sorted(set(agent_of)):
            for p in params:
                p.grad = None
            mine = [i for i, a in enumerate(agent_of) if a == agent]
            self._accumulate(sequences, mine, old_lp, ref_lp, adv, None, lambda loss: loss.backward())
            grads = [p.grad.detach().float().norm() for p in params if p.grad is not None]
            norms[f"grad_norm/{agent}"] = float(torch.stack(grads).norm()) if grads else 0.0
        for p in params:
            p.grad = None
        return norms
