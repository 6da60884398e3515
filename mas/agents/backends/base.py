"""The generation backend protocol (docs/architecture.md, "Contracts") and the records it exchanges."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    max_new_tokens: int = 32


@dataclass
class GenerationRequest:
    prompt_ids: list[int]
    # Constrained decoding: the complete token sequences the answer may be (each ending with
    # end-of-sequence); the backend samples from the policy renormalized over their prefix tree.
    candidates: list[list[int]] | None = None
    # KV-cache reuse (a hint; backends may ignore it): `reuse` > 0 says the first `reuse` prompt ids
    # are this seat's previous prompt + response; `keep` asks to keep this turn's cache for that.
    reuse: int = 0
    keep: bool = False


@dataclass
class Generation:
    token_ids: list[int]
    logprobs: list[float]
    text: str
    finished: bool  # ended with end-of-sequence (False: cut off at max_new_tokens)
    allowed_ids: list[list[int]] | None = None  # per token, the ids allowed there (constrained only)


class Backend:
    """Base class of generation backends. A policy worker talks to its backend only through these
    methods: whatever differs between backends is a method here, overridden where it differs."""

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingParams, seed: int
    ) -> list[Generation]:
        """One generation per request, sampled with `sampling`; `seed` makes the call reproducible."""
        raise NotImplementedError

    def set_weights(self, weights: dict[str, Any] | str) -> None:
        """New weights: a state dict, or a Hugging Face model folder."""
        raise NotImplementedError

    def offload(self) -> None:
        """Free the accelerator while another policy works (scheduling.strategy: colocate).
        Default: nothing to free."""

    def onload(self) -> None:
        """Take the accelerator back after `offload`. Default: nothing."""

    def answer_probabilities(self, requests: list[GenerationRequest],
                             samplings: list[SamplingParams]) -> list[list[list[float]]]:
        """For each sampling and each constrained request, the probability that constrained decoding
        answers each of the request's candidates (temperature 0: 1 for the answer greedy decoding
        gives, 0 for the others); `[sampling][request][candidate]`. Exact evaluation reads policies
        through this. Default: not available."""
        raise ValueError(f"the {type(self).__name__} cannot compute answer probabilities; exact evaluation "
                         "needs the hf backend")

    def follow_trainer(self, weights: Callable[[], dict[str, Any]] | str) -> None:
        """The worker's trainable model changed: an update (`weights()` gives its state dict) or a
        checkpoint loaded from the folder `weights`. Default: take the new weights with
        `set_weights`, for a backend that generates from a copy of its own."""
        self.set_weights(weights() if callable(weights) else weights)
