"""A training run, the single controller: rollout -> advantages -> update -> eval -> checkpoint,
with TensorBoard and console logs. `TrainingRun(cfg).run()` is what `mas train` calls."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyspiel
import torch

from mas.agents import bots
from mas.agents.agent import Agent
from mas.agents.models import load_tokenizer, resolve
from mas.config import Config, ConfigError, to_yaml
from mas.evaluation.games import MatchResult, eval_agent, format_table, play_matches
from mas.evaluation.workflows import format_accuracy_table, team_accuracy
from mas.games import env_specs, make as make_env
from mas.games.adversarial import episode_metrics
from mas.orchestration.cluster import start_ray, start_worker, stop_worker
from mas.orchestration.handles import gather
from mas.orchestration.matchmaking import GameSlot, plan_episodes
from mas.orchestration.opponents import FrozenOpponent, OpponentPool, learner_points
from mas.orchestration.rollout import EpisodeSpec, RolloutEngine
from mas.orchestration.scheduler import ResourcePool, check_capacity, local_capacity, plan_placement
from mas.orchestration.task_sampling import TaskSampler
from mas.orchestration.topology import build_agents, seat_agents, worker_spec
from mas.records import TurnBatch
from mas.seeding import stable_seed
from mas import runtime
from mas.training import checkpoint
from mas.training.advantages import make_estimator
from mas.training.sequential import run_sequential


def _worker_death_errors() -> tuple:
    """Exceptions that mean a worker process is gone (none without Ray: in-process workers)."""
    try:
        import ray

        return (ray.exceptions.RayActorError,)
    except ImportError:
        return ()


def loss_rows(turns: list, advantages: torch.Tensor, aux: dict) -> tuple[list, list]:
    """The rows the loss sees and what each carries, from an estimator's extras (docs/algorithms.md,
    "Loss-side extras"): rows with `loss_mask` 0 leave the update (MC-GRPO's pivot); `adv_global`,
    `adv_local` and `blend_w` make each row a blend [(1 - w, A_glob), (w, A_loc)] (COPO)."""
    if "blend_w" in aux:
        w, glob, loc = (aux[k].tolist() for k in ("blend_w", "adv_global", "adv_local"))
        values = [[[1.0 - wi, g], [wi, lo]] for wi, g, lo in zip(w, glob, loc)]
    else:
        values = advantages.tolist()
    if "loss_mask" in aux:
        keep = [i for i, m in enumerate(aux["loss_mask"].tolist()) if m > 0]
        return [turns[i] for i in keep], [values[i] for i in keep]
    return turns, values


def advantage_stats(batch: TurnBatch, advantages: torch.Tensor) -> dict[str, float]:
    """Mean and std of the advantages per agent and per seat (TensorBoard: adv/...)."""
    out = {}
    for column, prefix in (("agent", "adv/"), ("seat", "adv/seat")):
        values = getattr(batch, column)
        values = values.tolist() if isinstance(values, torch.Tensor) else values
        for key in sorted(set(values)):
            picked = advantages[[i for i, v in enumerate(values) if v == key]].double()
            out[f"{prefix}{key}/mean"] = float(picked.mean())
            out[f"{prefix}{key}/std"] = float(picked.std(unbiased=False))
    return out


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
            self.games.append(GameSlot(env, share, seat_agents(cfg, self.agents, env)))
        self.env, self.seats = self.games[0].env, self.games[0].seats
        self.team = getattr(self.env, "team", False)  # a workflow: every seat on one side
        for slot in self.games:
            slot.opponents = {spec: bots.make(spec, slot.env) for spec in cfg.rollout.opponents if _is_bot(spec)}
        eval_specs = [] if self.team else dict.fromkeys(cfg.eval.opponents + cfg.eval.final_opponents)
        self.eval_bots = {spec: bots.make(spec, self.env) for spec in eval_specs}
        self.opponent_pool: OpponentPool | None = None
        self.estimator = make_estimator(cfg.training.estimator, **cfg.training.estimator_args)
        self.task_sampler = self._make_task_sampler()
        self.run_dir = Path(cfg.resume or cfg.run.dir or Path("runs") / cfg.run.name)
        self.model_paths = {name: resolve(p.model, p.seed) for name, p in cfg.policies.items()}
        self.plan = plan_placement(cfg)
        if cfg.ray.enabled and not cfg.ray.address:  # refused before anything starts
            check_capacity(self.plan, local_capacity(cfg))
        self.pool = None
        self.workers: dict = {}
        self.writer = None
        self.start_iteration = 0
        self.history: list[dict] = []
        self.restarts = 0
        self.pool_orders: list[list[str]] = []  # sequential updates: the pools of each iteration, in order

    def _make_task_sampler(self) -> TaskSampler | None:
        r = self.cfg.rollout
        if not r.tasks:
            return None
        return TaskSampler(r.tasks, r.task_sampler, run_seed=self.cfg.run.seed, group_size=r.group_size,
                           decay=r.vade.decay, relax=r.vade.relax, prior=r.vade.prior)

    # --- setup --------------------------------------------------------------------------------
    def _start(self) -> None:
        cfg = self.cfg
        if cfg.ray.enabled:
            start_ray(cfg.ray.address, dashboard=cfg.ray.dashboard, num_cpus=cfg.ray.num_cpus, num_gpus=cfg.ray.num_gpus)
            if cfg.ray.address:
                import ray

                check_capacity(self.plan, ray.cluster_resources(), f"the cluster at {cfg.ray.address}")
            self.pool = ResourcePool(self.plan)
        self._start_workers()
        tokenizers = {name: load_tokenizer(path) for name, path in self.model_paths.items()}
        self.engine = RolloutEngine(self.env, self.workers, tokenizers)
        self._start_frozen_opponents()
        runtime.freeze_long_lived()  # workers in this process included

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

    def _start_workers(self) -> None:
        for name, path in self.model_paths.items():
            options = self.pool.actor_options(name) if self.pool else None
            self.workers[name] = start_worker(worker_spec(self.cfg, name, path), use_ray=self.cfg.ray.enabled,
                                              options=options)

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
        gather([h.submit("load", str(latest)) for h in self.workers.values()])
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
        self.shutdown()
        self._start_workers()
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
                             seeds=seeds)

    def iteration(self, it: int) -> dict:
        t0 = time.perf_counter()
        member = self.opponent_pool.choose(it) if self.opponent_pool is not None else None
        for slot in self.games:  # reward weights that follow a schedule (attacker/defender envs)
            if hasattr(slot.env, "set_iteration"):
                slot.env.set_iteration(it)
        episodes, stats = self.engine.play(self.episode_specs(it), seed=stable_seed(self.cfg.run.seed, it, 1))
        turns = [t for ep in episodes for t in ep.turns]
        metrics: dict[str, float] = {
            "perf/rollout_s": stats.seconds,
            "perf/games_per_s": stats.episodes / max(stats.seconds, 1e-9),
            "perf/generated_tokens_per_s": stats.generated_tokens / max(stats.seconds, 1e-9),
            "rollout/invalid_rate": stats.invalid_turns / max(stats.turns, 1),
            "rollout/turns": stats.turns,
        }
        for seat in range(self.env.num_seats):
            own = [ep.returns[seat] for ep in episodes if ep.seat_players[seat] in self.agents]
            if own:
                metrics[f"reward/seat{seat}"] = float(np.mean(own))
        if self.team:
            metrics["reward/team_accuracy"] = float(np.mean([ep.outcomes[0] == "win" for ep in episodes]))
        if len(self.games) > 1:
            for slot in self.games:
                mine = [ep for ep in episodes if ep.env == slot.env.id]
                metrics[f"reward/{slot.env.id}/mean_game_return"] = float(np.mean(
                    [r for ep in mine for p, r in zip(ep.seat_players, ep.game_returns) if p in self.agents] or [0.0]))
        if member is not None:
            metrics.update(self.opponent_pool.record(learner_points(episodes, "pool", set(self.agents))))
        metrics.update(episode_metrics([ep.info for ep in episodes if "attacked" in ep.info]))
        if self.task_sampler is not None:
            metrics.update(self.task_sampler.observe(episodes, set(self.agents)))
        if not turns:
            return metrics
        batch = TurnBatch.from_turns(turns)
        advantage_tensor, aux = self.estimator(batch, return_aux=True)
        metrics.update(advantage_stats(batch, advantage_tensor))
        t1 = time.perf_counter()
        turns, advantages = self._active_rows(it, *loss_rows(turns, advantage_tensor, aux))
        if self.cfg.training.update == "joint":
            metrics.update(self.update_policies(turns, advantages, stable_seed(self.cfg.run.seed, it, 2)))
        else:
            metrics.update(self.update_sequentially(turns, advantages, stable_seed(self.cfg.run.seed, it, 3)))
        if hasattr(self.estimator, "observe"):  # trackers that learn from the batch after the update (spo)
            self.estimator.observe(batch, self.score_turns)
        metrics["perf/update_s"] = time.perf_counter() - t1
        metrics["perf/iteration_s"] = time.perf_counter() - t0
        return metrics

    def score_turns(self, turns: list) -> list:
        """Each turn's response-token log-probs under its policy now (None where the policy does
        not train, so has no trainer to score with)."""
        out: list = [None] * len(turns)
        for policy, handle in self.workers.items():
            rows = [i for i, t in enumerate(turns) if t.policy == policy]
            if rows and self.cfg.policies[policy].trainable:
                for i, lp in zip(rows, handle.call("token_logprobs", [turns[i] for i in rows])):
                    out[i] = lp
        return out

    def _active_rows(self, it: int, turns: list, advantages: list) -> tuple[list, list]:
        """`training.schedule: alternating`: only the agents of this iteration's group learn
        (k iterations per group, groups in the order they first appear among the agents)."""
        cfg = self.cfg.training
        if cfg.schedule != "alternating":
            return turns, advantages
        groups = list(dict.fromkeys(a.group or a.name for a in self.cfg.agents))
        active = groups[(it // cfg.alternate_every) % len(groups)]
        members = {a.name for a in self.cfg.agents if (a.group or a.name) == active}
        rows = [i for i, t in enumerate(turns) if t.agent in members]
        return [turns[i] for i in rows], [advantages[i] for i in rows]

    def update_policies(self, turns: list, advantages: list[float], seed: int) -> dict[str, float]:
        """Each trainable policy learns from its own rows: side by side (split), or one after
        another with only the active model on the shared device (colocate)."""
        jobs = []
        for policy, handle in self.workers.items():
            rows = [i for i, t in enumerate(turns) if t.policy == policy]
            if rows and self.cfg.policies[policy].trainable:
                jobs.append((policy, handle, [turns[i] for i in rows], [advantages[i] for i in rows]))
        if self.cfg.scheduling.strategy == "colocate":
            results = []
            offload = self.cfg.scheduling.offload
            for policy, handle, rows, adv in jobs:
                if offload:
                    gather([h.submit("offload") for name, h in self.workers.items() if name != policy])
                results.append(handle.call("update", rows, adv, seed))
            if offload:
                gather([h.submit("onload") for h in self.workers.values()])
        else:
            results = gather([handle.submit("update", rows, adv, seed) for _, handle, rows, adv in jobs])
        return {f"train/{policy}/{k}": v for (policy, *_), m in zip(jobs, results) for k, v in m.items()}

    def update_sequentially(self, turns: list, advantages: list[float], seed: int) -> dict[str, float]:
        """SeeUPO / HAPPO (mas/training/sequential.py): pools one after another, the factor P passed
        from pool to pool (and from policy to policy) by this controller."""
        seq = self.cfg.training.sequential
        trainable = [p for p in self.workers if self.cfg.policies[p].trainable]

        def update_pools(jobs):
            futures = [self.workers[pool.policy].submit("update_pool", [turns[r] for r in pool.rows], adv,
                                                        seq.steps_per_pool, seq.ratio_base) for pool, adv in jobs]
            return gather(futures)

        per_policy, labels = run_sequential(self.cfg.training.update, turns, advantages, trainable, update_pools,
                                            order=seq.order, clip_factor=seq.clip_factor, seed=seed)
        self.pool_orders.append(labels)
        return {f"train/{policy}/{k}": v for policy, m in per_policy.items() for k, v in m.items()}

    # --- evaluation ---------------------------------------------------------------------------
    def evaluate(self, player, opponents: list[str], games: int, seed: int) -> dict[str, MatchResult]:
        results = {}
        for i, spec in enumerate(opponents):
            results[spec], _ = play_matches(self.engine, player, self.eval_bots[spec], self.env.num_seats,
                                            games, stable_seed(seed, i))
        return results

    def evaluate_team(self, games: int, seed: int) -> dict:
        players = [eval_agent(a, self.cfg.eval.temperature) for a in self.seats]
        tasks = self.task_sampler.seeds if self.cfg.eval.tasks == "pool" else None
        return team_accuracy(self.engine, players, games, seed, tasks=tasks)

    def _eval_metrics(self, done: int) -> dict[str, float]:
        cfg = self.cfg
        seed = stable_seed(cfg.run.seed, 999, done)
        if self.team:
            r = self.evaluate_team(cfg.eval.games, seed)
            return {"eval/team/accuracy": r["accuracy"], "eval/team/invalid": r["invalid"]}
        if len(self.games) > 1:
            return self._eval_mixture(seed)
        if getattr(self.env, "evaluates_itself", False):  # every seat an agent; the env reports the score
            players = [eval_agent(a, cfg.eval.temperature) for a in self.seats]
            specs = [EpisodeSpec(20_000_000 + k, 20_000_000 + k, stable_seed(seed, k), players) for k in range(cfg.eval.games)]
            episodes, _ = self.engine.play(specs, seed=seed)
            return {f"eval/{k.split('/', 1)[1]}": v for k, v in episode_metrics([ep.info for ep in episodes]).items()}
        results = self.evaluate(self.eval_player(), cfg.eval.opponents, cfg.eval.games, seed)
        return {f"eval/{spec}/{key}": res.overall[key]
                for spec, res in results.items() for key in ("win", "draw", "loss", "invalid", "non_loss")}

    def _eval_mixture(self, seed: int) -> dict[str, float]:
        """Each game of a mixture: non-loss rates against the evaluation bots that apply to it, and
        the mean score of greedy self-play in cooperative games (Hanabi)."""
        out = {}
        for i, slot in enumerate(self.games):
            player = eval_agent(slot.seats[0], self.cfg.eval.temperature)
            game = getattr(slot.env, "game", None)
            if game is not None and game.get_type().utility == pyspiel.GameType.Utility.IDENTICAL:
                specs = [EpisodeSpec(20_000_000 + k, 20_000_000 + k, stable_seed(seed, i, k), [player] * slot.env.num_seats,
                                     env=slot.env) for k in range(self.cfg.eval.games)]
                episodes, _ = self.engine.play(specs, seed=stable_seed(seed, i))
                out[f"eval/{slot.env.id}/selfplay_score"] = float(np.mean([ep.game_returns[0] for ep in episodes]))
                continue
            for j, spec in enumerate(self.cfg.eval.opponents):
                try:
                    bot = bots.make(spec, slot.env)
                except ValueError:
                    continue  # e.g. MCTS on a game with step rewards
                res, _ = play_matches(self.engine, player, bot, slot.env.num_seats, self.cfg.eval.games,
                                      stable_seed(seed, i, j), env=slot.env)
                out[f"eval/{slot.env.id}/{spec}/non_loss"] = res.overall["non_loss"]
                out[f"eval/{slot.env.id}/{spec}/invalid"] = res.overall["invalid"]
        return out

    def _log(self, done: int, metrics: dict) -> None:
        self.history.append({"iteration": done, **{k: float(v) for k, v in metrics.items()}})
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, done)
        self.writer.flush()

    def eval_player(self) -> Agent:
        return eval_agent(self.seats[0], self.cfg.eval.temperature)

    # --- checkpoints --------------------------------------------------------------------------
    def save(self, it: int) -> Path:
        staged = checkpoint.staging_dir(self.run_dir, it)
        gather([h.submit("save", str(staged)) for h in self.workers.values()])
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
            runtime.thaw()
            self.shutdown()
            if self.pool is not None:
                self.pool.remove()
                self.pool = None
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
            self._log(0, self._eval_metrics(0))
        it = self.start_iteration
        while it < total:
            t0 = time.perf_counter()
            try:
                metrics = self.iteration(it)
                train_seconds += time.perf_counter() - t0
                done = it + 1
                if cfg.eval.every and (done % cfg.eval.every == 0 or done == total):
                    metrics.update(self._eval_metrics(done))
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
        if cfg.eval.final_games and (self.team or cfg.eval.final_opponents):
            summary["final_eval"] = self.final_evaluation()
        summary["total_seconds"] = time.perf_counter() - started
        checkpoint.write_text_atomic(self.run_dir / "summary.json", json.dumps(summary, indent=1))
        return summary

    def _postfix(self, m: dict) -> dict:
        # evaluation numbers stay on the bar until the next evaluation replaces them
        self._last_eval = getattr(self, "_last_eval", {})
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
        losses = [v for k, v in m.items() if k.endswith("/loss") and k.startswith("train/")]
        if losses:
            out["loss"] = f"{np.mean(losses):+.3f}"
        out["games/s"] = f"{m.get('perf/games_per_s', 0):.1f}"
        return out

    def _with_initial(self, policies: list[str], evaluate):
        """Run `evaluate()` with the untrained weights of `policies` (in-process, frozen)."""
        saved = {p: self.engine.handles[p] for p in policies}
        for p in policies:
            self.engine.handles[p] = start_worker(worker_spec(self.cfg, p, self.model_paths[p], trainable=False),
                                                  use_ray=False)
        try:
            return evaluate()
        finally:
            self.engine.handles.update(saved)

    def final_evaluation(self) -> dict:
        cfg = self.cfg
        seed = stable_seed(cfg.run.seed, 4242)
        t0 = time.perf_counter()
        if self.team:
            rows = {"trained": self.evaluate_team(cfg.eval.final_games, seed)}
            if cfg.eval.compare_initial:
                rows["initial"] = self._with_initial(list(self.workers), lambda: self.evaluate_team(cfg.eval.final_games, seed))
            print("\nfinal evaluation (95% Wilson intervals)")
            print(format_accuracy_table(rows))
            out: dict = dict(rows)
        else:
            table: dict[str, dict[str, MatchResult]] = {}
            table["trained"] = self.evaluate(self.eval_player(), cfg.eval.final_opponents, cfg.eval.final_games, seed)
            if cfg.eval.compare_initial:
                table["initial"] = self._with_initial(
                    [self.seats[0].policy],
                    lambda: self.evaluate(self.eval_player(), cfg.eval.final_opponents, cfg.eval.final_games, seed))
                random_bot = bots.make("random", self.env)
                table["random-bot"] = self.evaluate(random_bot, cfg.eval.final_opponents, cfg.eval.final_games, seed)
            print("\nfinal evaluation (95% Wilson intervals; an invalid game counts as a loss)")
            print(format_table(table))
            out = {player: {opp: r.to_json() for opp, r in results.items()} for player, results in table.items()}
        out["seconds"] = time.perf_counter() - t0
        (self.run_dir / "eval_final.json").write_text(json.dumps(out, indent=1))
        return out

    def shutdown(self) -> None:
        for handle in self.workers.values():
            stop_worker(handle)
        self.workers.clear()  # the rollout engine holds this same dict
