"""The DeepSpeed ZeRO strategy gives the update the torch strategy gives: ZeRO-2 (and 1) data-parallel on
two CPU processes matches one process step for step, a single-process engine under `PolicyTrainer`
matches `TorchStrategy`, and a save / load of its state resumes bit for bit.

The training tests need the `deepspeed` extra and are slow (engine start-up; on first use DeepSpeed
compiles a small CPU extension): `pytest -m slow tests/training/test_deepspeed.py`. The refusals
need neither and run with the default suite."""
from __future__ import annotations

import io
import os
import socket

import pytest
import torch
import torch.nn.functional as F

from mas.agents.models import load_model
from mas.records import Turn
from mas.training.losses import LossConfig
from mas.training.strategies import STRATEGIES, OptimizerSettings, make_strategy
from mas.training.trainer import PolicyTrainer, UpdateSettings

# lr large enough that the weights move visibly each step; grad_clip below the tiny model's gradient
# norm so the clipping path is exercised; weight decay on so AdamW's decoupled term is compared too.
SETTINGS = OptimizerSettings(lr=1e-2, weight_decay=0.01, grad_clip=1.0)
STEPS, SEQS, WIDTH, WORLD = 6, 8, 16, 2


def _batch(vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed synthetic batch, trained on at every step: token ids and each sequence's length (right
    padded, so ranks hold different token counts)."""
    g = torch.Generator().manual_seed(1234)
    return torch.randint(3, vocab, (SEQS, WIDTH), generator=g), torch.randint(6, WIDTH + 1, (SEQS,), generator=g)


def _nll_sum(model, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Summed next-token cross-entropy over the real (unpadded) tokens of a micro-batch."""
    mask = torch.arange(ids.shape[1]) < lengths[:, None]
    logits = model(input_ids=ids, attention_mask=mask.long()).logits[:, :-1]
    labels = ids[:, 1:].masked_fill(~mask[:, 1:], -100)
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum")


def _train(model, strategy, rank: int = 0, world: int = 1):
    """STEPS optimizer steps on the fixed batch; its SEQS sequences are split evenly over the ranks and
    each rank's share goes through backward in micro-batches of two sequences (>= 2 per step per rank).

    Every rank normalises by the token count of the whole step and multiplies by `world`: DeepSpeed
    averages gradients over ranks, so the average of the ranks' gradients is exactly the gradient of
    the one-process loss sum(nll) / tokens. Returns per step this rank's share of that loss (the
    shares add up to it) and the global gradient norm."""
    losses, norms = [], []
    share = SEQS // world
    ids, lengths = _batch(model.config.vocab_size)
    tokens = int((lengths - 1).sum())  # predicted tokens of the whole batch, on every rank
    mine = slice(rank * share, (rank + 1) * share)
    for _ in range(STEPS):
        strategy.zero_grad()
        part = 0.0
        for mb_ids, mb_len in zip(ids[mine].split(2), lengths[mine].split(2)):
            loss = _nll_sum(model, mb_ids, mb_len) / tokens
            strategy.backward(loss * world)
            part += float(loss.detach())
        losses.append(part)
        norms.append(strategy.step())
    return losses, norms


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data_parallel_rank(rank: int, port: int, path: str, out_dir: str, stage: int) -> None:
    """One data-parallel rank, started the way torchrun would (env:// rendezvous on loopback)."""
    import torch.distributed as dist

    from mas.training.strategies import DeepSpeedStrategy

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    model = load_model(path)
    strategy = DeepSpeedStrategy(model, SETTINGS, zero_stage=stage)
    losses, norms = _train(model, strategy, rank, WORLD)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    torch.save({"losses": losses, "norms": norms, "params": params}, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


# --- refusals: no deepspeed needed -------------------------------------------------------------------
def test_unknown_strategy_is_refused_naming_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown strategy 'fsdp'; allowed: torch, deepspeed"):
        make_strategy("fsdp", torch.nn.Linear(2, 2), SETTINGS)
    assert set(STRATEGIES) == {"torch", "deepspeed"}


def test_zero_stage_3_is_refused_in_one_line():
    with pytest.raises(ValueError, match="needs full weights: use zero_stage 1 or 2") as err:
        make_strategy("deepspeed", torch.nn.Linear(2, 2), SETTINGS, zero_stage=3)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="zero_stage must be 1 or 2, got 0"):
        make_strategy("deepspeed", torch.nn.Linear(2, 2), SETTINGS, zero_stage=0)


# --- training: deepspeed needed, slow ----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(900)  # the first use compiles DeepSpeed's CPU extension in each fresh cache
@pytest.mark.parametrize("stage", [2, 1])
def test_zero_on_two_processes_matches_one_process_torch(stage, tiny_path, tmp_path):
    pytest.importorskip("deepspeed")
    import torch.multiprocessing as mp

    from mas.training.strategies import TorchStrategy

    torch.set_num_threads(1)
    model = load_model(tiny_path)
    ref_losses, ref_norms = _train(model, TorchStrategy(model, SETTINGS))

    mp.spawn(_data_parallel_rank, args=(_free_port(), tiny_path, str(tmp_path), stage), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]

    # Both runs see the same micro-batches in float32; they differ only in summation order (gloo's
    # reduction, DeepSpeed's float64 norm): losses agree to ~1e-7 and norms to ~1e-6 relative, so
    # rel 1e-5 leaves a 10x margin. AdamW barely sees a gradient's scale, so the norm is what catches
    # a wrong world factor or a missing accumulation (off by 2x). Parameters are compared with an
    # absolute tolerance of lr / 1000: an AdamW step moves each weight by up to ~lr whatever its
    # gradient, and weights whose gradient nearly cancels can move by a few 1e-6 differently
    # (observed <= 2.3e-6 after six steps); gradients that were not averaged over ranks would move
    # the weights by ~lr differently.
    losses = [sum(r["losses"][k] for r in ranks) for k in range(STEPS)]
    assert losses == pytest.approx(ref_losses, rel=1e-5)
    assert ranks[0]["norms"] == pytest.approx(ref_norms, rel=1e-5)
    assert ranks[1]["norms"] == ranks[0]["norms"]  # the norm is global, not per rank
    assert max(ref_norms) > SETTINGS.grad_clip  # clipping was in play
    assert losses[-1] < losses[0] - 0.5  # and the model did learn
    for name, p in model.named_parameters():
        for r in ranks:
            torch.testing.assert_close(r["params"][name], p.detach(), rtol=1e-4, atol=SETTINGS.lr / 1000,
                                       msg=name)


def _turns(seed: int, vocab: int) -> list[Turn]:
    g = torch.Generator().manual_seed(seed)
    turns = []
    for i in range(8):
        prompt = torch.randint(3, vocab, (int(torch.randint(4, 9, (1,), generator=g)),), generator=g)
        response = torch.randint(3, vocab, (int(torch.randint(3, 7, (1,), generator=g)),), generator=g)
        turns.append(Turn(episode_id=i, group_id=i // 2, env="t", agent="a", policy="p", seat=0, turn=0,
                          step=0, prompt_ids=prompt.tolist(), response_ids=response.tolist(),
                          logprobs=[-7.0] * len(response)))
    return turns


def _trainer(path: str, name: str) -> PolicyTrainer:
    model = load_model(path)
    options = {"zero_stage": 2} if name == "deepspeed" else {}
    # 2 epochs x 2 mini-batches = 4 optimizer steps per update; 32 tokens make >= 2 micro-batches each.
    update = UpdateSettings(ppo_epochs=2, mini_batches=2, micro_batch_tokens=32)
    return PolicyTrainer(model, make_strategy(name, model, SETTINGS, **options), LossConfig(), update)


def _update(trainer: PolicyTrainer, i: int) -> dict[str, float]:
    advantages = torch.randn(8, generator=torch.Generator().manual_seed(100 + i)).tolist()
    return trainer.update(_turns(i, trainer.model.config.vocab_size), advantages, seed=i)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_single_process_zero2_under_policy_trainer_matches_torch_and_resumes_exactly(tiny_path):
    pytest.importorskip("deepspeed")
    torch.set_num_threads(1)
    reference, straight = _trainer(tiny_path, "torch"), _trainer(tiny_path, "deepspeed")
    for i in range(3):
        want, got = _update(reference, i), _update(straight, i)
        assert got["optimizer_steps"] == 4
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-5, abs=1e-7)
        assert got["grad_norm"] == pytest.approx(want["grad_norm"], rel=1e-5)
    for p, q in zip(straight.model.parameters(), reference.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=SETTINGS.lr / 1000)  # as in the test above

    # Interrupt after the first update: save weights and optimizer state through torch.save ...
    first = _trainer(tiny_path, "deepspeed")
    _update(first, 0)
    buffer = io.BytesIO()
    torch.save({"model": first.model.state_dict(), "optimizer": first.strategy.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    # ... and continue in a fresh model + engine. The optimizer state goes in before the weights,
    # the harder order: the engine's float32 copy must follow the model's weights.
    resumed = _trainer(tiny_path, "deepspeed")
    resumed.strategy.load_state_dict(saved["optimizer"])
    resumed.model.load_state_dict(saved["model"])
    for i in (1, 2):
        _update(resumed, i)
    for (name, p), q in zip(resumed.model.named_parameters(), straight.model.parameters()):
        assert torch.equal(p, q), name

    with pytest.raises(ValueError, match="rank 0 of 2 cannot be loaded into rank 0 of 1"):
        resumed.strategy.load_state_dict({**saved["optimizer"], "world_size": 2})
