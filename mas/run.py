"""A training run, the single controller: rollout -> advantages -> update -> eval -> checkpoint,
with TensorBoard and console logs. `TrainingRun(cfg).run()` is what `mas train` calls.

The run wires the parts and drives the loop; the parts own their knowledge: the env its
capabilities, the estimator what it asks of the loss, `PolicyWorkers` the worker processes,
the evaluator (chosen by the env) what evaluation means."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from mas.agents import bots
from mas.agents.models import load_tokenizer, resolve
from mas.config import Config, ConfigError, to_yaml
from mas.evaluation.evaluators import make_evaluator
from mas.games import env_specs, make as make_env
from mas.orchestration.iteration_metrics import advantage_stats, rollout_metrics
from mas.orchestration.matchmaking import GameSlot, plan_episodes
from mas.orchestration.opponents import FrozenOpponent, OpponentPool, learner_points
from mas.orchestration.policy_workers import PolicyWorkers
from mas.orchestration.rollout import EpisodeSpec, RolloutEngine
from mas.orchestration.task_sampling import TaskSampler
from mas.orchestration.topology import build_agents, seat_agents
from mas.records import TurnBatch
from mas.seeding import JOINT_UPDATE_STREAM, ROLLOUT_STREAM, SEQUENTIAL_UPDATE_STREAM, stable_seed
from mas.training import checkpoint
from mas.training.advantages import loss_rows, make_estimator
from mas.training.schedule import learning_agents
from mas.training.sequential import run_sequential


def _worker_death_errors() -> tuple:
    """Exceptions that mean a worker process is gone (none without Ray: in-process workers)."""
    try:
        import ray

        return (ray.exceptions.RayActorError,)
    except ImportError:
        return ()


def _is_bot(spec: str) -> bool:
    return spec != "pool" and not spec.startswith("checkpoint:")


class TrainingRun:
    def __init__(self, cfg: Config, *, progress: bool = True):
        self.cfg = cfg
        self.progress = progress
        self.agents = build_agents(cfg)
        self.games = []  # one slot per game of the mixture (one game: one slot)
        for spec, share in env_specs(cfg):
            env = make_env(spec)
            slot = GameSlot(env, share, seat_agents(cfg, self.agents, env))
            slot.opponents = {o: bots.make(o, env) for o in cfg.rollout.opponents if _is_bot(o)}
            self.games.append(slot)
        self.env, self.seats = self.games[0].env, self.games[0].seats
        self.opponent_pool: OpponentPool | None = None
        self.estimator = make_estimator(cfg.training.estimator, **cfg.training.estimator_args)
        self.task_sampler = self._make_task_sampler()
        self.evaluator = make_evaluator(cfg, self.games, self.task_sampler.seeds if self.task_sampler else None)
        self.run_dir = Path(cfg.resume or cfg.run.dir or Path("runs") / cfg.run.name)
        self.model_paths = {name: resolve(p.model, p.seed) for name, p in cfg.policies.items()}
        self.workers = PolicyWorkers(cfg, self.model_paths)
        self.writer = None
        self.start_iteration = 0
        self.history: list[dict] = []
        self.restarts = 0
        self.pool_orders: list[list[str]] = []  # sequential updates: the pools of each iteration, in order
        self._last_eval: dict[str, float] = {}

    def _make_task_sampler(self) -> TaskSampler | None:
        r = self.cfg.rollout
        if not r.tasks:
            return None
        return TaskSampler(r.tasks, r.task_sampler, run_seed=self.cfg.run.seed, group_size=r.group_size,
                           decay=r.vade.decay, relax=r.vade.relax, prior=r.vade.prior)

    # --- setup --------------------------------------------------------------------------------
    def _start(self) -> None:
        self.workers.start()
        tokenizers = {name: load_tokenizer(path) for name, path in self.model_paths.items()}
        self.engine = RolloutEngine(self.env, self.workers, tokenizers)
        self._start_frozen_opponents()

    def _start_frozen_opponents(self) -> None:
        """checkpoint:PATH and pool opponents: frozen policies in this process, playing like the
        learner's agent (same prompt and sampling)."""
        learner = self.seats[0]
        for spec in self.cfg.rollout.opponents:
            if spec == "pool":
                pool_cfg = self.cfg.rollout.pool
                self.opponent_pool = opponent = OpponentPool(
                    self.run_dir, learner.policy, self.model_paths[learner.policy], learner,
                    sample=pool_cfg.sample, size=pool_cfg.size, seed=self.cfg.run.seed)
            elif spec.startswith("checkpoint:"):
                opponent = FrozenOpponent(spec, spec.split(":", 1)[1], learner)
            else:
                continue
            self.engine.add_policy(opponent.agent.policy, opponent.handle, opponent.tokenizer)
            for slot in self.games:
                slot.opponents[spec] = opponent.agent

    def _prepare_dir(self) -> None:
        cfg = self.cfg
        latest = checkpoint.latest_committed(self.run_dir)
        if cfg.resume:
            if latest is None:
                raise ConfigError(f"resume: '{self.run_dir}' has no committed checkpoint to resume from")
        elif latest is not None or (self.run_dir / "config.yaml").exists():
            raise ConfigError(
                f"run.dir: '{self.run_dir}' already holds a run; continue it with resume={self.run_dir} "
                "or choose another run.name / run.dir"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(to_yaml(cfg))

    def _resume(self) -> None:
        latest = checkpoint.latest_committed(self.run_dir)
        if latest is None:
            return
        self.workers.load(str(latest))
        state = torch.load(latest / "trainer_state" / "controller.pt", weights_only=False)
        self.start_iteration = state["iteration"]
        self.estimator.load_state_dict(state["estimator"])
        if self.task_sampler is not None:
            self.task_sampler.load_state_dict(state["task_sampler"])
        if self.opponent_pool is not None and "pool" in state:
            self.opponent_pool.load_state_dict(state["pool"])
        self.history = [h for h in state["history"] if h["iteration"] <= self.start_iteration]
        print(f"resumed {self.run_dir} at iteration {self.start_iteration} ({latest.name})")

    def _open_writer(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        if self.writer is not None:
            self.writer.close()
        # purge_step drops events logged after the step we continue from (a replay rewrites them)
        self.writer = SummaryWriter(str(self.run_dir), purge_step=self.start_iteration + 1)

    def _recover(self, err: Exception) -> None:
        """A worker died: start every worker again, load the last committed step (or the initial
        weights) and continue from there. Seeds derive from (run seed, iteration), so the replayed
        iterations are the ones the dead worker would have run."""
        self.restarts += 1
        if self.restarts > self.cfg.run.max_restarts:
            raise RuntimeError(f"a worker died {self.restarts} times (run.max_restarts={self.cfg.run.max_restarts}); "
                               f"last error: {str(err).splitlines()[0]}") from err
        latest = checkpoint.latest_committed(self.run_dir)
        print(f"worker lost ({type(err).__name__}); restart {self.restarts}/{self.cfg.run.max_restarts} "
              f"from {latest.name if latest else 'the initial weights'}")
        self.workers.restart()
        self.estimator = make_estimator(self.cfg.training.estimator, **self.cfg.training.estimator_args)
        self.task_sampler = self._make_task_sampler()
        self.start_iteration, self.history = 0, []
        self._resume()
        self._open_writer()

    # --- one iteration ------------------------------------------------------------------------
    def episode_specs(self, iteration: int) -> list[EpisodeSpec]:
        """Deterministic games, matchups and seeds (mas/orchestration/matchmaking.py)."""
        cfg = self.cfg
        seeds = None
        if self.task_sampler is not None:
            seeds = self.task_sampler.choose(iteration, cfg.rollout.episodes // cfg.rollout.group_size)
        return plan_episodes(self.games, episodes=cfg.rollout.episodes, group_size=cfg.rollout.group_size,
                             opponent_shares=cfg.rollout.opponents, run_seed=cfg.run.seed, iteration=iteration,
                             seeds=seeds, opening_moves=cfg.rollout.opening_moves,
                             opening_share=cfg.rollout.opening_share)

    def iteration(self, it: int) -> dict:
        t0 = time.perf_counter()
        seed = self.cfg.run.seed
        member = self.opponent_pool.choose(it) if self.opponent_pool is not None else None
        for slot in self.games:  # reward weights that follow a schedule (attacker/defender envs)
            slot.env.set_iteration(it)
        episodes, stats = self.engine.play(self.episode_specs(it), seed=stable_seed(seed, it, ROLLOUT_STREAM))
        metrics = rollout_metrics(episodes, stats, self.games, set(self.agents))
        if member is not None:
            metrics.update(self.opponent_pool.record(learner_points(episodes, "pool", set(self.agents))))
        if self.task_sampler is not None:
            metrics.update(self.task_sampler.observe(episodes, set(self.agents)))
        turns = [t for ep in episodes for t in ep.turns]
        if not turns:
            return metrics
        batch = TurnBatch.from_turns(turns)
        advantage_tensor, aux = self.estimator(batch, return_aux=True)
        metrics.update(advantage_stats(batch, advantage_tensor))
        t1 = time.perf_counter()
        turns, advantages = loss_rows(self.cfg.training.estimator, turns, advantage_tensor, aux)
        turns, advantages = self._learning_rows(it, turns, advantages)
        learning = {t.policy for t in turns}
        for policy, lr in self.workers.set_learning_rates(it).items():
            if policy in learning:  # logged beside the policy's update metrics
                metrics[f"train/{policy}/lr"] = lr
        if self.cfg.training.update == "joint":
            metrics.update(self.update_policies(turns, advantages, stable_seed(seed, it, JOINT_UPDATE_STREAM)))
        else:
            metrics.update(self.update_sequentially(turns, advantages, stable_seed(seed, it, SEQUENTIAL_UPDATE_STREAM)))
        self.estimator.observe(batch, self.workers.token_logprobs)  # trackers that learn after the update (spo)
        metrics["perf/update_s"] = time.perf_counter() - t1
        metrics["perf/iteration_s"] = time.perf_counter() - t0
        return metrics

    def _learning_rows(self, it: int, turns: list, advantages: list) -> tuple[list, list]:
        """The rows of the agents that learn in this iteration (training.schedule)."""
        t = self.cfg.training
        learning = learning_agents(t.schedule, self.cfg.agents, it, t.alternate_every)
        if learning is None:
            return turns, advantages
        rows = [i for i, turn in enumerate(turns) if turn.agent in learning]
        return [turns[i] for i in rows], [advantages[i] for i in rows]

    def update_policies(self, turns: list, advantages: list[float], seed: int) -> dict[str, float]:
        per_policy = self.workers.update(turns, advantages, seed)
        return {f"train/{policy}/{k}": v for policy, m in per_policy.items() for k, v in m.items()}

    def update_sequentially(self, turns: list, advantages: list[float], seed: int) -> dict[str, float]:
        """SeeUPO / HAPPO (mas/training/sequential.py): pools one after another, the factor P passed
        from pool to pool (and from policy to policy) by this controller."""
        seq = self.cfg.training.sequential
        per_policy, labels = run_sequential(
            self.cfg.training.update, turns, advantages, self.workers.trainable(),
            lambda jobs: self.workers.update_pools(jobs, turns, seq.steps_per_pool, seq.ratio_base),
            order=seq.order, clip_factor=seq.clip_factor, seed=seed)
        self.pool_orders.append(labels)
        return {f"train/{policy}/{k}": v for policy, m in per_policy.items() for k, v in m.items()}

    def _log(self, done: int, metrics: dict) -> None:
        self.history.append({"iteration": done, **{k: float(v) for k, v in metrics.items()}})
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, done)
        self.writer.flush()

    # --- checkpoints --------------------------------------------------------------------------
    def save(self, it: int) -> Path:
        staged = checkpoint.staging_dir(self.run_dir, it)
        self.workers.save(str(staged))
        state = {"iteration": it, "estimator": self.estimator.state_dict(), "history": self.history}
        if self.task_sampler is not None:
            state["task_sampler"] = self.task_sampler.state_dict()
        if self.opponent_pool is not None:
            state["pool"] = self.opponent_pool.state_dict()
        torch.save(state, staged / "trainer_state" / "controller.pt")
        path = checkpoint.commit(self.run_dir, it, staged)
        checkpoint.prune(self.run_dir, self.cfg.run.keep_last)
        return path

    # --- main loop ----------------------------------------------------------------------------
    def run(self) -> dict:
        self._prepare_dir()
        try:
            return self._run()
        finally:  # also on errors: a shared Ray session gets its CPUs and GPUs back
            self.workers.close()
            if self.writer is not None:
                self.writer.close()

    def _run(self) -> dict:
        from tqdm import tqdm

        cfg = self.cfg
        started = time.perf_counter()
        self._start()
        self._resume()
        self._open_writer()
        total = cfg.training.iterations
        bar = tqdm(total=total, initial=self.start_iteration, desc=f"train {cfg.run.name}", unit="it",
                   disable=not self.progress, dynamic_ncols=True)
        train_seconds = 0.0
        lost = _worker_death_errors()
        if cfg.eval.every and self.start_iteration == 0:  # the untrained starting point of the curve
            self._log(0, self.evaluator.periodic(self.engine, 0))
        it = self.start_iteration
        while it < total:
            t0 = time.perf_counter()
            try:
                metrics = self.iteration(it)
                train_seconds += time.perf_counter() - t0
                done = it + 1
                if cfg.eval.every and (done % cfg.eval.every == 0 or done == total):
                    metrics.update(self.evaluator.periodic(self.engine, done))
                self._log(done, metrics)
                if done % cfg.run.save_every == 0 or done == total:
                    self.save(done)
            except lost as err:
                self._recover(err)
                it = self.start_iteration
                bar.n = it
                bar.refresh()
                continue
            bar.set_postfix(self._postfix(metrics), refresh=False)
            bar.update(1)
            it = done
        bar.close()
        summary = {"run_dir": str(self.run_dir), "train_seconds": train_seconds, "worker_restarts": self.restarts,
                   "history": self.history}
        if self.evaluator.has_final():
            t0 = time.perf_counter()
            final = self.evaluator.final(self.engine, self.workers.initial_copies)
            final["seconds"] = time.perf_counter() - t0
            (self.run_dir / "eval_final.json").write_text(json.dumps(final, indent=1))
            summary["final_eval"] = final
        summary["total_seconds"] = time.perf_counter() - started
        checkpoint.write_text_atomic(self.run_dir / "summary.json", json.dumps(summary, indent=1))
        return summary

    def _postfix(self, m: dict) -> dict:
        # evaluation numbers stay on the bar until the next evaluation replaces them
        self._last_eval.update({k: v for k, v in m.items() if k.startswith("eval/")})
        m = {**self._last_eval, **m}
        out = {}
        rewards = [v for k, v in m.items() if k.startswith("reward/seat")]
        if rewards:
            out["reward"] = f"{np.mean(rewards):+.2f}"
        for k, v in m.items():
            if k.startswith("eval/") and k.endswith("/non_loss"):
                out[f"vs_{k.split('/')[1]}"] = f"{v:.2f}"
        if "eval/team/accuracy" in m:
            out["eval_acc"] = f"{m['eval/team/accuracy']:.2f}"
        losses = [v for k, v in m.items() if k.startswith("train/") and k.endswith("/loss")]
        if losses:
            out["loss"] = f"{np.mean(losses):+.3f}"
        out["games/s"] = f"{m.get('perf/games_per_s', 0):.1f}"
        return out
