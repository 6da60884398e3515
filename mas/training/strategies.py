"""Optimisation strategies: how a policy's parameters are updated, behind one small interface that
`PolicyTrainer` drives (`zero_grad`, `backward` once per micro-batch, `step`, `state_dict`).

- `torch`: one process, one device, AdamW with gradient clipping.
- `deepspeed`: the same AdamW update through DeepSpeed ZeRO stage 1 (optimizer states sharded across
  data-parallel ranks) or 2 (gradients sharded too), so a policy too large for one device's optimizer
  memory still trains. Stage 3 (sharded weights) is refused: the generation backend in the same
  process reads the full weights. DeepSpeed is an optional extra and is imported only when used.

Both train in float32 and give the same update: gradients accumulate over the backward calls of one
step (the trainer has already normalised each loss by the step's token count), are clipped to
`grad_clip` by global norm, and `step()` returns that norm before clipping."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass
class OptimizerSettings:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping


def _adamw(params, settings: OptimizerSettings) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        params,
        lr=settings.lr,
        betas=tuple(settings.betas),
        eps=settings.eps,
        weight_decay=settings.weight_decay,
    )


class TorchStrategy:
    plain_backward = True  # gradients land in param.grad by loss.backward() (diagnostics may do so)

    def __init__(self, model: torch.nn.Module, settings: OptimizerSettings):
        self.model = model
        self.settings = settings
        self.optimizer = _adamw([p for p in model.parameters() if p.requires_grad], settings)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> float:
        """Clip, step; returns the gradient norm before clipping."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = self.settings.grad_clip if self.settings.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm) if params else torch.tensor(0.0)
        self.optimizer.step()
        return float(norm)

    def set_lr_factor(self, factor: float) -> None:
        """This iteration's learning rate: the configured one times `factor` (a schedule)."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.settings.lr * factor

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)


def _import_deepspeed():
    # Without CUDA, DeepSpeed must be told to use its CPU accelerator before its first import.
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    try:
        import deepspeed
    except ImportError:
        message = "strategy 'deepspeed' needs the deepspeed extra: pip install -e '.[deepspeed]'"
        raise ImportError(message) from None
    from deepspeed.runtime.zero.stage_1_and_2 import DeepSpeedZeroOptimizer

    # Older releases ignore `managed_gradient_accumulation` and would silently keep only the last
    # micro-batch's gradient under ZeRO-2; this method came with caller-owned accumulation.
    if not hasattr(DeepSpeedZeroOptimizer, "finalize_gradient_accumulation_boundary"):
        raise ImportError(f"strategy 'deepspeed' needs deepspeed>=0.19.8, found {deepspeed.__version__}: "
                          "pip install -e '.[deepspeed]'")
    import logging

    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)  # mas prints its own progress
    return deepspeed


def _ensure_process_group() -> None:
    """A worker that was not started by a distributed launcher gets a one-process gloo group, so the
    same strategy runs in a plain process. The store listens on loopback on a port the OS picks."""
    import torch.distributed as dist

    if dist.is_initialized():
        if "LOCAL_RANK" not in os.environ:  # DeepSpeed picks the device from it; launchers set it
            raise ValueError("strategy 'deepspeed' in a multi-process group needs LOCAL_RANK (torchrun sets it)")
        return
    os.environ.setdefault("LOCAL_RANK", "0")
    store = dist.TCPStore("127.0.0.1", 0, world_size=1, is_master=True)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)


class DeepSpeedStrategy:
    """ZeRO stage 1 or 2 over the caller's process group (or a one-process one).

    Checkpoints: `state_dict()` is this rank's shard (AdamW moments of the parameter slice it owns);
    in a multi-rank run every rank saves its own (e.g. `trainer_state/<policy>.rank<k>.pt`) and a
    resume loads each rank's file into the same rank of a run with the same world size. The model's
    parameters are the source of truth for the weights: load them before or after the optimizer
    state, as with `TorchStrategy`."""

    plain_backward = False  # ZeRO's hooks own the gradients: no side backward passes

    def __init__(self, model: torch.nn.Module, settings: OptimizerSettings, *, zero_stage: int = 2):
        if zero_stage == 3:
            raise ValueError(
                "DeepSpeed ZeRO stage 3 shards the weights, but the generation backend in the same "
                "process needs full weights: use zero_stage 1 or 2"
            )
        if zero_stage not in ZERO_STAGES:
            raise ValueError(f"zero_stage must be 1 or 2, got {zero_stage}")
        dtypes = {p.dtype for p in model.parameters()}
        if dtypes != {torch.float32}:
            raise ValueError(f"strategy 'deepspeed' trains in float32; the model has {sorted(map(str, dtypes))}")
        deepspeed = _import_deepspeed()
        _ensure_process_group()
        # Hand DeepSpeed the group that exists (gloo unless the caller chose otherwise), so that it
        # does not set up ccl or nccl of its own.
        deepspeed.init_distributed(dist_backend=torch.distributed.get_backend(), dist_init_required=False)
        self.model = model
        self.settings = settings
        self.zero_stage = zero_stage
        config = {
            "train_micro_batch_size_per_gpu": 1,  # only used for DeepSpeed's sample counters
            "gradient_accumulation_steps": 1,  # no loss rescaling: the trainer normalises losses
            # The trainer decides how many backward calls make one step; each step() is a boundary.
            "managed_gradient_accumulation": False,
            "gradient_clipping": float(settings.grad_clip),  # 0 = off, as in OptimizerSettings
            "zero_optimization": {"stage": zero_stage},
            "steps_per_print": 2**62,
        }
        params = [p for p in model.parameters() if p.requires_grad]
        self.engine, *_ = deepspeed.initialize(model=model, optimizer=_adamw(params, settings), config=config)
        self._dist = torch.distributed

    def zero_grad(self) -> None:
        self.engine.optimizer.zero_grad(set_to_none=True)

    def backward(self, loss: torch.Tensor) -> None:
        # ZeRO-2 reduces each bucket as its gradients are ready; ranks average their gradients.
        self.engine.backward(loss, scale_wrt_gas=False)

    def step(self) -> float:
        """Clip, step; returns the global gradient norm (over all ranks) before clipping."""
        # ZeRO keeps its own float32 copy of each rank's slice; refresh it from the model so that
        # weights set on the model (a resume, a weight push) are what the step updates.
        self.engine.optimizer.refresh_fp32_params()
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else 0.0

    def set_lr_factor(self, factor: float) -> None:
        """This iteration's learning rate: the configured one times `factor` (a schedule)."""
        for group in self.engine.optimizer.param_groups:
            group["lr"] = self.settings.lr * factor

    def state_dict(self) -> dict:
        return {
            "rank": self._dist.get_rank(),
            "world_size": self._dist.get_world_size(),
            "zero": self.engine.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        rank, world = self._dist.get_rank(), self._dist.get_world_size()
        if (state["rank"], state["world_size"]) != (rank, world):
            raise ValueError(
                f"optimizer shard of rank {state['rank']} of {state['world_size']} cannot be loaded "
                f"into rank {rank} of {world}: resume with the same number of ranks"
            )
        shards = [None] * world
        shards[rank] = state["zero"]  # DeepSpeed reads only this rank's entry of the list
        self.engine.optimizer.load_state_dict(shards, load_from_fp32_weights=False)


ZERO_STAGES = (1, 2)  # stage 3 shards the weights, which the generation backend in the process needs whole
STRATEGIES = {"torch": TorchStrategy, "deepspeed": DeepSpeedStrategy}


def make_strategy(name: str, model: torch.nn.Module, settings: OptimizerSettings, **options):
    """The strategy registered as `name`; `options` go to its constructor (`zero_stage` for deepspeed)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; allowed: {', '.join(STRATEGIES)}")
    return STRATEGIES[name](model, settings, **options)
