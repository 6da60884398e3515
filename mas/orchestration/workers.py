"""PolicyWorker: one policy's model for training and its generation backend, in one process.

Under `mas train` each worker is a Ray actor; in unit tests it is a plain object. Either way the
controller drives it through a handle (`mas.orchestration.handles`)."""
from __future__ import annotations

import copy
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mas.agents.backends.hf import HFBackend, load_weights
from mas.agents.models import load_model, load_tokenizer
from mas.training.losses import LossConfig
from mas.training.strategies import OptimizerSettings, make_strategy
from mas.training.trainer import PolicyTrainer, UpdateSettings

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class WorkerSpec:
    policy: str
    model_path: str
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 1
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    loss: LossConfig = field(default_factory=LossConfig)
    update: UpdateSettings = field(default_factory=UpdateSettings)
    max_batch_size: int = 256
    trainable: bool = True
    backend: str = "hf"  # hf | vllm
    strategy: str = "torch"  # torch | deepspeed
    zero_stage: int = 2


class PolicyWorker:
    def __init__(self, spec: WorkerSpec):
        # Ray gives an actor one thread unless told; a fixed count also keeps results reproducible.
        torch.set_num_threads(max(1, spec.threads))
        torch.manual_seed(spec.seed)
        self.spec = spec
        self.tokenizer = load_tokenizer(spec.model_path)
        self.model = load_model(spec.model_path, _DTYPES[spec.dtype], spec.device)
        self.backend = self._make_backend(spec)
        self.offloaded = False
        self.trainer = None
        if spec.trainable:
            ref = None
            if spec.loss.kl_coef > 0:
                ref = copy.deepcopy(self.model).eval()
                ref.requires_grad_(False)
            options = {"zero_stage": spec.zero_stage} if spec.strategy == "deepspeed" else {}
            self.trainer = PolicyTrainer(
                self.model,
                make_strategy(spec.strategy, self.model, spec.optimizer, **options),
                spec.loss,
                spec.update,
                ref_model=ref,
                device=spec.device,
            )

    def _make_backend(self, spec: WorkerSpec):
        if spec.backend == "vllm":
            from mas.agents.backends.vllm import VLLMBackend

            # vLLM holds its own copy of the weights; `update` pushes new ones after each step.
            return VLLMBackend(spec.model_path, dtype=spec.dtype, seed=spec.seed)
        return HFBackend(self.model, self.tokenizer, device=spec.device, max_batch_size=spec.max_batch_size)

    def ready(self) -> bool:
        return True

    def placement(self) -> dict:
        """Where Ray put this worker: process, GPU ids, placement group and assigned resources."""
        import ray

        ctx = ray.get_runtime_context()
        return {"pid": os.getpid(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                "placement_group": ctx.get_placement_group_id(), "resources": ctx.get_assigned_resources(),
                "torch_threads": torch.get_num_threads()}

    def pid(self) -> int:
        return os.getpid()

    # --- sharing a GPU (scheduling.strategy: colocate) ------------------------------------------
    def offload(self) -> None:
        """Move weights and optimizer state off the accelerator while another policy works."""
        self._move("cpu")
        self.offloaded = True

    def onload(self) -> None:
        self._move(self.spec.device)
        self.offloaded = False

    def _move(self, device: str) -> None:
        if self.spec.device == "cpu":
            return  # nothing to free on a CPU-only worker
        if self.spec.backend == "vllm":
            (self.backend.offload if device == "cpu" else self.backend.onload)()
        self.model.to(device)
        if self.trainer is not None:
            optimizer = getattr(self.trainer.strategy, "optimizer", None)
            for state in getattr(optimizer, "state", {}).values():
                for key, value in state.items():
                    if torch.is_tensor(value):
                        state[key] = value.to(device)
        if device == "cpu" and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def generate(self, requests, sampling, seed):
        return self.backend.generate(requests, sampling, seed)

    def update(self, turns, advantages, seed) -> dict[str, float]:
        metrics = self.trainer.update(turns, advantages, seed)
        if self.spec.backend == "vllm":
            self.backend.set_weights(self.state_dict())
        # hf: the backend shares the model object, so new weights are already in place.
        return metrics

    def update_pool(self, turns, advantages, steps: int = 1, ratio_base: str = "record") -> dict:
        """One pool of a sequential schedule (SeeUPO / HAPPO): see PolicyTrainer.update_pool."""
        result = self.trainer.update_pool(turns, advantages, steps=steps, ratio_base=ratio_base)
        if self.spec.backend == "vllm":
            self.backend.set_weights(self.state_dict())
        return result

    def load_weights(self, path: str) -> None:
        """New weights from a Hugging Face folder (a frozen opponent switching checkpoints)."""
        load_weights(self.model, path)
        if self.spec.backend == "vllm":
            self.backend.set_weights(path)

    def save(self, step_dir: str) -> None:
        step_dir = Path(step_dir)
        self.model.save_pretrained(step_dir / self.spec.policy)
        self.tokenizer.save_pretrained(step_dir / self.spec.policy)
        state = {
            "rng_torch": torch.get_rng_state(),
            "rng_numpy": np.random.get_state(),
            "rng_python": random.getstate(),
        }
        if self.trainer is not None:
            state["optimizer"] = self.trainer.strategy.state_dict()
        torch.save(state, step_dir / "trainer_state" / f"{self.spec.policy}.pt")

    def load(self, step_dir: str) -> None:
        step_dir = Path(step_dir)
        weights = str(step_dir / self.spec.policy)
        load_weights(self.model, weights)
        if self.spec.backend == "vllm":
            self.backend.set_weights(weights)
        state = torch.load(step_dir / "trainer_state" / f"{self.spec.policy}.pt", weights_only=False)
        torch.set_rng_state(state["rng_torch"])
        np.random.set_state(state["rng_numpy"])
        random.setstate(state["rng_python"])
        if self.trainer is not None and "optimizer" in state:
            self.trainer.strategy.load_state_dict(state["optimizer"])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
