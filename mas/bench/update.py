"""Update throughput: one `PolicyTrainer` optimizer step on a fixed batch of turns beside a bare
PyTorch forward + backward + AdamW step on the same sequences and micro-batches. The trainer's
once-per-update forwards (old log-probs, and the KL reference where configured) are timed apart."""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass

import torch

from mas.bench.workloads import Setup
from mas.training.packing import micro_batches, pack_turns


@dataclass
class UpdateTimes:
    response_tokens: int
    sequences: int
    step_s: float  # trainer: loss + backward + clip + AdamW, over the whole batch
    bare_step_s: float  # bare PyTorch on the same micro-batches, LM head on every position
    bare_lean_step_s: float  # the same with the LM head only where response tokens are predicted
    old_logprobs_s: float  # trainer: the eval-mode forward that records log pi_old
    reference_s: float  # the same forward under the KL reference (frozen copy here)

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        out["step_tokens_per_s"] = self.response_tokens / self.step_s
        out["bare_tokens_per_s"] = self.response_tokens / self.bare_step_s
        out["step_vs_bare"] = self.step_s / self.bare_step_s
        out["step_vs_bare_lean"] = self.step_s / self.bare_lean_step_s
        return out


def _interleaved_medians(fns: list, repeats: int) -> list[float]:
    """Median seconds of each function, run in rotation `repeats` times after one warm-up each
    (allocator, optimizer state), so that drift in the machine's speed hits them alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def bare_step(model, optimizer, batches, advantages: dict[int, torch.Tensor], grad_clip: float,
              head_on_targets: bool = False) -> None:
    """A hand-written policy-gradient step: forward, log-softmax, gather the sampled tokens, the
    advantage-weighted mean, backward, clip, AdamW. `head_on_targets`: the LM head only at the
    positions that predict response tokens (as the trainer does), else on every position."""
    optimizer.zero_grad(set_to_none=True)
    total = sum(len(s.target_pos) for batch in batches for s in batch)
    for batch in batches:
        width = max(len(s.input_ids) for s in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        rows, cols, targets, adv = [], [], [], []
        for b, seq in enumerate(batch):
            ids[b, : len(seq.input_ids)] = torch.tensor(seq.input_ids)
            mask[b, : len(seq.input_ids)] = 1
            rows += [b] * len(seq.target_pos)
            cols += [p - 1 for p in seq.target_pos]
            targets += [seq.input_ids[p] for p in seq.target_pos]
            adv.append(advantages[id(seq)])
        if head_on_targets:
            hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
            logits = model.get_output_embeddings()(hidden[rows, cols])
        else:
            logits = model(input_ids=ids, attention_mask=mask).logits[rows, cols]
        logp = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(targets).unsqueeze(-1)).squeeze(-1)
        loss = -(torch.cat(adv) * logp).sum() / total
        loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


def time_update(setup: Setup, turns, advantages: list[float], repeats: int = 5) -> UpdateTimes:
    trainer = setup.worker.trainer
    sequences = pack_turns(turns)
    sequences.sort(key=lambda s: len(s.input_ids))
    adv = torch.as_tensor(advantages, dtype=torch.float32)
    old_lp, _ = trainer._score(trainer.model, sequences)
    everything = list(range(len(sequences)))
    reference = copy.deepcopy(trainer.model).eval().requires_grad_(False)
    bare = copy.deepcopy(trainer.model).train()
    opt = trainer.strategy.settings
    optimizer = torch.optim.AdamW([p for p in bare.parameters() if p.requires_grad], lr=opt.lr,
                                  betas=tuple(opt.betas), eps=opt.eps)
    batches = micro_batches(sequences, trainer.settings.micro_batch_tokens)
    per_seq = {id(s): adv[s.target_row] for s in sequences}
    step_s, bare_s, lean_s, old_s, ref_s = _interleaved_medians([
        lambda: trainer._optimizer_step(sequences, everything, old_lp, None, adv),
        lambda: bare_step(bare, optimizer, batches, per_seq, opt.grad_clip, False),
        lambda: bare_step(bare, optimizer, batches, per_seq, opt.grad_clip, True),
        lambda: trainer._score(trainer.model, sequences),
        lambda: trainer._score(reference, sequences),
    ], repeats)
    tokens = sum(len(s.target_pos) for s in sequences)
    return UpdateTimes(tokens, len(sequences), step_s, bare_s, lean_s, old_s, ref_s)
