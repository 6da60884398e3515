"""Beta posteriors on the success of each task, with forgetting: the state SPO's value tracker
(docs/algorithms.md, `spo`) and the VADE task sampler ("Task sampling") share. Keys are strings, so
the state saves as plain JSON-able lists."""
from __future__ import annotations

from typing import Any


class BetaTracker:
    """`alpha_q, beta_q` per task key q, starting at the prior (alpha0, beta0)."""

    def __init__(self, alpha0: float = 0.5, beta0: float = 0.5):
        if not (alpha0 > 0 and beta0 > 0):
            raise ValueError(f"BetaTracker: the prior must be positive, got alpha0={alpha0}, beta0={beta0}")
        self.alpha0, self.beta0 = float(alpha0), float(beta0)
        self.params: dict[str, list[float]] = {}  # key -> [alpha, beta]

    def get(self, key: str) -> tuple[float, float]:
        alpha, beta = self.params.get(key, (self.alpha0, self.beta0))
        return alpha, beta

    def mean(self, key: str) -> float:
        """The posterior mean p = alpha / (alpha + beta)."""
        alpha, beta = self.get(key)
        return alpha / (alpha + beta)

    def set(self, key: str, alpha: float, beta: float) -> None:
        self.params[key] = [float(alpha), float(beta)]

    def observe(self, key: str, successes: float, failures: float, rho: float = 1.0) -> None:
        """`alpha <- rho alpha + successes`, `beta <- rho beta + failures`: the older evidence
        counts `rho` as much (the policy that produced it has moved on)."""
        alpha, beta = self.get(key)
        self.set(key, rho * alpha + successes, rho * beta + failures)

    def relax(self, rate: float) -> None:
        """Every posterior moves back toward the prior: `x <- x0 + rate (x - x0)` (slow forgetting
        for tasks not seen lately)."""
        for key, (alpha, beta) in self.params.items():
            self.params[key] = [self.alpha0 + rate * (alpha - self.alpha0), self.beta0 + rate * (beta - self.beta0)]

    def state_dict(self) -> dict[str, Any]:
        return {"alpha0": self.alpha0, "beta0": self.beta0,
                "params": [[k, a, b] for k, (a, b) in sorted(self.params.items())]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.alpha0, self.beta0 = float(state["alpha0"]), float(state["beta0"])
        self.params = {str(k): [float(a), float(b)] for k, a, b in state["params"]}

    def __len__(self) -> int:
        return len(self.params)
