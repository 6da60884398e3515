"""PolicyWorker: one policy's model for training and its generation backend, in one process.

Under `mas train` each worker is a Ray actor; in unit tests it is a plain object. Either way the
controller drives it through a handle (`mas.orchestration.handles`)."""
from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mas.agents.backends.hf import HFBackend
from mas.agents.models import load_model, load_tokenizer
from mas.training.losses import LossConfig
from mas.training.strategies import OptimizerSettings, TorchStrategy
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


class PolicyWorker:
    def __init__(self, spec: WorkerSpec):
        # Ray gives an actor one thread unless told; a fixed count also keeps results reproducible.
        torch.set_num_threads(max(1, spec.threads))
        torch.manual_seed(spec.seed)
        self.spec = spec
        self.tokenizer = load_tokenizer(spec.model_path)
        self.model = load_model(spec.model_path, _DTYPES[spec.dtype], spec.device)
        self.backend = HFBackend(self.model, self.tokenizer, device=spec.device, max_batch_size=spec.max_batch_size)
        self.trainer = None
        if spec.trainable:
            ref = None
            if spec.loss.kl_coef > 0:
                ref = copy.deepcopy(self.model).eval()
                ref.requires_grad_(False)
            self.trainer = PolicyTrainer(
                self.model,
                TorchStrategy(self.model, spec.optimizer),
                spec.loss,
                spec.update,
                ref_model=ref,
                device=spec.device,
            )

    def ready(self) -> bool:
        return True

    def generate(self, requests, sampling, seed):
        return self.backend.generate(requests, sampling, seed)

    def update(self, turns, advantages, seed) -> dict[str, float]:
        metrics = self.trainer.update(turns, advantages, seed)
        # Same process: the backend shares the model object, so new weights are already in place.
        return metrics

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
        self.backend.set_weights(str(step_dir / self.spec.policy))
        state = torch.load(step_dir / "trainer_state" / f"{self.spec.policy}.pt", weights_only=False)
        torch.set_rng_state(state["rng_torch"])
        np.random.set_state(state["rng_numpy"])
        random.setstate(state["rng_python"])
        if self.trainer is not None and "optimizer" in state:
            self.trainer.strategy.load_state_dict(state["optimizer"])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
