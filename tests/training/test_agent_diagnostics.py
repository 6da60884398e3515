"""Per-agent gradient norms on a policy two agents share: each equals the gradient norm of an update
on that agent's rows alone (computed by a separate, identical trainer), and the diagnostic leaves the
update itself unchanged."""
from __future__ import annotations

import random

import pytest
import torch

from mas.agents.models import load_tokenizer
from mas.orchestration.workers import PolicyWorker, WorkerSpec
from mas.training.strategies import OptimizerSettings
from mas.training.trainer import UpdateSettings
from synthetic import episode_turns


def _worker(path, every=1):
    return PolicyWorker(WorkerSpec(policy="shared", model_path=path, seed=1,
                                   optimizer=OptimizerSettings(lr=1e-3, grad_clip=0.0),
                                   update=UpdateSettings(agent_grad_norm_every=every)))


@pytest.fixture(scope="module")
def batch(tiny_path):
    tok = load_tokenizer(tiny_path)
    rng = random.Random(4)
    plan = [("solver", "shared", 0), ("verifier", "shared", 1), ("solver", "shared", 0)]
    turns = [t for e in range(6) for t in episode_turns(rng, e, plan, tok.eos_token_id, len(tok))]
    advantages = [0.3 * ((i * 5) % 7 - 3) for i in range(len(turns))]
    return turns, advantages


def test_agent_grad_norm_is_the_norm_of_that_agents_loss_alone(tiny_path, batch):
    turns, advantages = batch
    joint = _worker(tiny_path).update(turns, advantages, seed=0)
    for agent in ("solver", "verifier"):
        rows = [i for i, t in enumerate(turns) if t.agent == agent]
        alone = _worker(tiny_path, every=0).update([turns[i] for i in rows], [advantages[i] for i in rows], seed=0)
        # one optimizer step at the starting weights: its pre-clip norm is that agent's gradient norm
        assert joint[f"grad_norm/{agent}"] == pytest.approx(alone["grad_norm"], rel=1e-4)
    assert joint["grad_norm/solver"] != pytest.approx(joint["grad_norm/verifier"], rel=1e-2)


def test_the_diagnostic_does_not_change_the_update(tiny_path, batch):
    turns, advantages = batch
    with_norms, without = _worker(tiny_path, every=1), _worker(tiny_path, every=0)
    with_norms.update(turns, advantages, seed=0)
    without.update(turns, advantages, seed=0)
    a, b = with_norms.state_dict(), without.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
