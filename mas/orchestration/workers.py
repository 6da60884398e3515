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

from mas.agents.backends import make_backend
from mas.agents.backends.hf import load_weights
from mas.agents.models import load_model, load_tokenizer
from mas.training.losses import LossConfig
from mas.training.strategies import OptimizerSettings, make_strategy
from mas.training.trainer import PolicyTrainer, UpdateSettings

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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
    lora: dict | None = None  # {r, alpha, target_modules, dropout}: train adapters on a frozen base
    attn_implementation: str | None = None
    gradient_checkpointing: bool = False


class PolicyWorker:
    def __init__(self, spec: WorkerSpec):
        # Ray gives an actor one thread unless told; a fixed count also keeps results reproducible.
        torch.set_num_threads(max(1, spec.threads))
        torch.manual_seed(spec.seed)
        self.spec = spec
        self.tokenizer = load_tokenizer(spec.model_path)
        self.model = load_model(spec.model_path, DTYPES[spec.dtype], spec.device, spec.attn_implementation)
        # With LoRA, `self.model` is the base model with adapters injected (trainer and HF backend
        # both use it as an ordinary model); `self.peft` manages the adapters.
        self.peft = attach_lora(self.model, spec.lora) if spec.lora and spec.trainable else None
        if self.peft is not None:
            self.model = self.peft.get_base_model()
        if spec.gradient_checkpointing and spec.trainable:
            # transformers 5 renamed the switch; older versions only have the first name
            enable = getattr(self.model, "activation_checkpointing_enable", None) or self.model.gradient_checkpointing_enable
            enable()
            if self.peft is not None:
                self.model.enable_input_require_grads()  # checkpointed blocks need a grad-carrying input
        self.backend = make_backend(spec.backend, model=self.model, tokenizer=self.tokenizer,
                                    model_path=spec.model_path, device=spec.device, dtype=spec.dtype,
                                    seed=spec.seed, max_batch_size=spec.max_batch_size)
        self.offloaded = False
        self.trainer = None
        if spec.trainable:
            ref = None
            if spec.loss.kl_coef > 0 and self.peft is None:
                ref = copy.deepcopy(self.model).eval()
                ref.requires_grad_(False)
            options = {"zero_stage": spec.zero_stage} if spec.strategy == "deepspeed" else {}
            self.trainer = PolicyTrainer(
                self.model,
                make_strategy(spec.strategy, self.model, spec.optimizer, **options),
                spec.loss,
                spec.update,
                ref_model=ref,
                # LoRA: the frozen base is the KL reference, at no extra memory (adapters switched off)
                reference_context=self.peft.disable_adapter if self.peft is not None and spec.loss.kl_coef > 0 else None,
                device=spec.device,
            )

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

    def answer_probabilities(self, requests, samplings):
        return self.backend.answer_probabilities(requests, samplings)

    def set_lr_factor(self, factor: float) -> None:
        self.trainer.strategy.set_lr_factor(factor)

    def update(self, turns, advantages, seed) -> dict[str, float]:
        metrics = self.trainer.update(turns, advantages, seed)
        self.backend.follow_trainer(self.state_dict)
        return {**metrics, **self.memory()}

    def token_logprobs(self, turns) -> list[list[float]]:
        """Each turn's response-token log-probs under the current weights (eval mode)."""
        return self.trainer.token_logprobs(turns)

    def memory(self) -> dict[str, float]:
        """Peak memory so far: this process's resident set (the whole run when in-process) and,
        on a GPU, the peak allocated by torch."""
        import resource

        out = {"peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}  # KiB on Linux
        if self.spec.device.startswith("cuda") and torch.cuda.is_available():
            out["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 2**30
        return out

    def update_pool(self, turns, advantages, steps: int = 1, ratio_base: str = "record") -> dict:
        """One pool of a sequential schedule (SeeUPO / HAPPO): see PolicyTrainer.update_pool."""
        result = self.trainer.update_pool(turns, advantages, steps=steps, ratio_base=ratio_base)
        self.backend.follow_trainer(self.state_dict)
        return result

    def load_weights(self, path: str) -> None:
        """New weights from a Hugging Face folder (a frozen opponent switching checkpoints)."""
        load_weights(self.model, path)
        self.backend.follow_trainer(path)

    def save(self, step_dir: str) -> None:
        """The policy folder holds whole (LoRA: merged) weights, loadable by any tool; the adapters
        themselves go into the trainer state, from which training resumes."""
        step_dir = Path(step_dir)
        if self.peft is None:
            self.model.save_pretrained(step_dir / self.spec.policy)
        else:
            self.model.save_pretrained(step_dir / self.spec.policy, state_dict=merged_state_dict(self.model))
        self.tokenizer.save_pretrained(step_dir / self.spec.policy)
        state = {
            "rng_torch": torch.get_rng_state(),
            "rng_numpy": np.random.get_state(),
            "rng_python": random.getstate(),
        }
        if self.trainer is not None:
            state["optimizer"] = self.trainer.strategy.state_dict()
        if self.peft is not None:
            from peft import get_peft_model_state_dict

            state["lora"] = {k: v.detach().cpu() for k, v in get_peft_model_state_dict(self.peft).items()}
        torch.save(state, step_dir / "trainer_state" / f"{self.spec.policy}.pt")

    def load(self, step_dir: str) -> None:
        step_dir = Path(step_dir)
        weights = str(step_dir / self.spec.policy)
        state = torch.load(step_dir / "trainer_state" / f"{self.spec.policy}.pt", weights_only=False)
        if self.peft is None:
            load_weights(self.model, weights)
        else:  # the base stays as loaded; only the adapters were trained
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(self.peft, state["lora"])
        self.backend.follow_trainer(weights)
        torch.set_rng_state(state["rng_torch"])
        np.random.set_state(state["rng_numpy"])
        random.setstate(state["rng_python"])
        if self.trainer is not None and "optimizer" in state:
            self.trainer.strategy.load_state_dict(state["optimizer"])

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.peft is not None:
            return merged_state_dict(self.model)
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}


def attach_lora(model, lora: dict):
    """Inject LoRA adapters (peft) into `model` in place; only they require gradients."""
    import warnings

    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=int(lora["r"]), lora_alpha=float(lora["alpha"]), lora_dropout=float(lora.get("dropout", 0.0)),
                        target_modules=list(lora["target_modules"]), bias="none", task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft asks transformers a deprecated question; not ours to fix
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def merged_state_dict(model) -> dict[str, torch.Tensor]:
    """The weights of `model` (adapters injected by peft) with each adapter folded into its base
    weight, under the original parameter names; the model itself is not changed (merging in place
    and back would drift by rounding at every save)."""
    from peft.tuners.lora import LoraLayer

    deltas = {name: module.get_delta_weight(adapter) for name, module in model.named_modules()
              if isinstance(module, LoraLayer) for adapter in module.active_adapters}
    merged = {}
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if ".lora_" in key:
                continue
            if key.endswith(".base_layer.weight"):
                owner = key[: -len(".base_layer.weight")]
                value = value + deltas[owner].to(value.dtype) if owner in deltas else value
            merged[key.replace(".base_layer.", ".")] = value.detach().cpu().clone()
    return merged
