"""A training run, the single controller: rollout -> advantages -> update -> eval -> checkpoint,
with TensorBoard and console logs. `TrainingRun(cfg).run()` is what `mas train` calls."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from mas.agents import bots
from mas.agents.agent import Agent
from mas.agents.backends.base import SamplingParams
from mas.agents.models import load_tokenizer, resolve
from mas.config import Config, ConfigError, to_yaml
from mas.evaluation.games import MatchResult, eval_agent, format_table, play_matches
from mas.games import make as make_env
from mas.orchestration.cluster import start_ray, start_worker, stop_worker
from mas.orchestration.handles import gather
from mas.orchestration.rollout import EpisodeSpec, RolloutEngine
from mas.orchestration.workers import WorkerSpec
from mas.records import TurnBatch
from mas.seeding import stable_seed
from mas.training import checkpoint
from mas.training.advantages import make_estimator
from mas.training.losses import LossConfig
from mas.training.strategies import OptimizerSettings
from mas.training.trainer import UpdateSettings


def env_spec(cfg: Config) -> dict:
    e = cfg.env
    spec = {"name": e.name, "rewards": e.rewards, "format_reward": e.format_reward,
            "invalid_penalty": e.invalid_penalty, "draw_reward": e.draw_reward, "max_turns": e.max_turns,
            "prompt": e.prompt, "history": e.history}
    if e.game is not None:
        spec["game"] = e.game
    if e.id is not None:
        spec["id"] = e.id
    return spec


def build_agents(cfg: Config) -> dict[str, Agent]:
    return {
        a.name: Agent(
            name=a.name,
            policy=a.policy,
            role_prompt=a.role_prompt,
            sampling=SamplingParams(a.sampling.temperature, a.sampling.top_p, a.sampling.top_k, a.sampling.max_new_tokens),
            constrained=a.sampling.constrained,
        )
        for a in cfg.agents
    }


def seat_agents(cfg: Config, agents: dict[str, Agent], num_seats: int) -> list[Agent]:
    if cfg.env.seats is not None:
        names = list(cfg.env.seats)
    elif len(agents) == 1:
        names = list(agents) * num_seats  # self-play: one agent plays every seat
    else:
        names = list(agents)
    if len(names) != num_seats:
        raise ConfigError(
            f"env.seats: the env has {num_seats} seats but {len(names)} agents are assigned; "
            "list one agent per seat in env.seats"
        )
    return [agents[n] for n in names]


def worker_spec(cfg: Config, policy: str, model_path: str, *, trainable: bool = True) -> WorkerSpec:
    p = cfg.policies[policy]
    loss = cfg.training.loss
    max_new = max((a.sampling.max_new_tokens for a in cfg.agents if a.policy == policy), default=None)
    return WorkerSpec(
        policy=policy,
        model_path=model_path,
        seed=stable_seed(cfg.run.seed, p.seed),
        device=p.device,
        dtype=p.dtype,
        threads=p.resources.threads,
        optimizer=OptimizerSettings(lr=p.optimizer.lr, betas=tuple(p.optimizer.betas), eps=p.optimizer.eps,
                                    weight_decay=p.optimizer.weight_decay, grad_clip=p.optimizer.grad_clip),
        loss=LossConfig(clip_low=loss.clip_low, clip_high=loss.clip_high, dual_clip=loss.dual_clip,
                        kl_coef=loss.kl_coef, kl_estimator=loss.kl_estimator, agg=loss.agg, max_new_tokens=max_new),
        update=UpdateSettings(ppo_epochs=cfg.training.ppo_epochs, mini_batches=cfg.training.mini_batches,
                              micro_batch_tokens=cfg.training.micro_batch_tokens),
        max_batch_size=p.max_batch_size,
        trainable=trainable and p.trainable,
    )


class TrainingRun:
    def __init__(self, cfg: Config, *, progress: bool = True):
        self.cfg = cfg
        self.progress = progress
        self.env = make_env(env_spec(cfg))
        self.agents = build_agents(cfg)
        self.seats = seat_agents(cfg, self.agents, self.env.num_seats)
        self.opponent_bots = {spec: bots.make(spec, self.env) for spec in cfg.rollout.opponents}
        self.eval_bots = {spec: bots.make(spec, self.env) for spec in dict.fromkeys(cfg.eval.opponents + cfg.eval.final_opponents)}
        self.estimator = make_estimator(cfg.training.estimator, **cfg.training.estimator_args)
        self.run_dir = Path(cfg.resume or cfg.run.dir or Path("runs") / cfg.run.name)
        self.model_paths = {name: resolve(p.model, p.seed) for name, p in cfg.policies.items()}
        self.workers: dict = {}
        self.writer = None
        self.start_iteration = 0
        self.history: list[dict] = []

    # --- setup --------------------------------------------------------------------------------
    def _start(self) -> None:
        cfg = self.cfg
        if cfg.ray.enabled:
            start_ray(cfg.ray.address, dashboard=cfg.ray.dashboard, num_cpus=cfg.ray.num_cpus, num_gpus=cfg.ray.num_gpus)
        for name, path in self.model_paths.items():
            res = cfg.policies[name].resources
            self.workers[name] = start_worker(worker_spec(cfg, name, path), use_ray=cfg.ray.enabled,
                                              num_cpus=res.num_cpus, num_gpus=res.num_gpus)
        tokenizers = {name: load_tokenizer(path) for name, path in self.model_paths.items()}
        self.engine = RolloutEngine(self.env, self.workers, tokenizers)

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
        self.history = [h for h in state["history"] if h["iteration"] <= self.start_iteration]
        print(f"resumed {self.run_dir} at iteration {self.start_iteration} ({latest.name})")

    # --- one iteration ------------------------------------------------------------------------
    def episode_specs(self, iteration: int) -> list[EpisodeSpec]:
        """Deterministic matchups and seeds: groups share a seed; a share of groups face a bot,
        which takes seat (group index mod seats)."""
        cfg = self.cfg
        groups = cfg.rollout.episodes // cfg.rollout.group_size
        matchups = []
        bot_groups = []
        for spec, share in cfg.rollout.opponents.items():
            bot_groups.extend([self.opponent_bots[spec]] * int(round(share * groups)))
        for g in range(groups):
            players = list(self.seats)
            if g < len(bot_groups):
                players[g % self.env.num_seats] = bot_groups[g]
            matchups.append(players)
        specs = []
        for slot in range(cfg.rollout.episodes):
            g = slot // cfg.rollout.group_size
            specs.append(EpisodeSpec(
                episode_id=iteration * cfg.rollout.episodes + slot,
                group_id=iteration * groups + g,
                seed=stable_seed(cfg.run.seed, iteration, g),
                players=matchups[g],
            ))
        return specs

    def iteration(self, it: int) -> dict:
        t0 = time.perf_counter()
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
        if not turns:
            return metrics
        batch = TurnBatch.from_turns(turns)
        advantages = self.estimator(batch).tolist()
        t1 = time.perf_counter()
        futures, names = [], []
        for policy, handle in self.workers.items():
            rows = [i for i, t in enumerate(turns) if t.policy == policy]
            if rows and self.cfg.policies[policy].trainable:
                futures.append(handle.submit("update", [turns[i] for i in rows], [advantages[i] for i in rows],
                                             stable_seed(self.cfg.run.seed, it, 2)))
                names.append(policy)
        for policy, m in zip(names, gather(futures)):
            for k, v in m.items():
                metrics[f"train/{policy}/{k}"] = v
        metrics["perf/update_s"] = time.perf_counter() - t1
        metrics["perf/iteration_s"] = time.perf_counter() - t0
        return metrics

    # --- evaluation ---------------------------------------------------------------------------
    def evaluate(self, player, opponents: list[str], games: int, seed: int) -> dict[str, MatchResult]:
        results = {}
        for i, spec in enumerate(opponents):
            results[spec], _ = play_matches(self.engine, player, self.eval_bots[spec], self.env.num_seats,
                                            games, stable_seed(seed, i))
        return results

    def _eval_metrics(self, done: int) -> dict[str, float]:
        cfg = self.cfg
        results = self.evaluate(self.eval_player(), cfg.eval.opponents, cfg.eval.games,
                                stable_seed(cfg.run.seed, 999, done))
        return {f"eval/{spec}/{key}": res.overall[key]
                for spec, res in results.items() for key in ("win", "draw", "loss", "invalid", "non_loss")}

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
        torch.save({"iteration": it, "estimator": self.estimator.state_dict(), "history": self.history},
                   staged / "trainer_state" / "controller.pt")
        path = checkpoint.commit(self.run_dir, it, staged)
        checkpoint.prune(self.run_dir, self.cfg.run.keep_last)
        return path

    # --- main loop ----------------------------------------------------------------------------
    def run(self) -> dict:
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        cfg = self.cfg
        self._prepare_dir()
        started = time.perf_counter()
        self._start()
        self._resume()
        self.writer = SummaryWriter(str(self.run_dir), purge_step=self.start_iteration + 1)
        total = cfg.training.iterations
        bar = tqdm(total=total, initial=self.start_iteration, desc=f"train {cfg.run.name}", unit="it",
                   disable=not self.progress, dynamic_ncols=True)
        train_seconds = 0.0
        if cfg.eval.every and self.start_iteration == 0:  # the untrained starting point of the curve
            self._log(0, self._eval_metrics(0))
        for it in range(self.start_iteration, total):
            t0 = time.perf_counter()
            metrics = self.iteration(it)
            train_seconds += time.perf_counter() - t0
            done = it + 1
            if cfg.eval.every and (done % cfg.eval.every == 0 or done == total):
                metrics.update(self._eval_metrics(done))
            self._log(done, metrics)
            if done % cfg.run.save_every == 0 or done == total:
                self.save(done)
            bar.set_postfix(self._postfix(metrics), refresh=False)
            bar.update(1)
        bar.close()
        summary = {"run_dir": str(self.run_dir), "train_seconds": train_seconds,
                   "history": self.history}
        if cfg.eval.final_games and cfg.eval.final_opponents:
            summary["final_eval"] = self.final_evaluation()
        summary["total_seconds"] = time.perf_counter() - started
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        self.writer.close()
        self.shutdown()
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
        losses = [v for k, v in m.items() if k.endswith("/loss") and k.startswith("train/")]
        if losses:
            out["loss"] = f"{np.mean(losses):+.3f}"
        out["games/s"] = f"{m.get('perf/games_per_s', 0):.1f}"
        return out

    def final_evaluation(self) -> dict:
        cfg = self.cfg
        seed = stable_seed(cfg.run.seed, 4242)
        table: dict[str, dict[str, MatchResult]] = {}
        t0 = time.perf_counter()
        table["trained"] = self.evaluate(self.eval_player(), cfg.eval.final_opponents, cfg.eval.final_games, seed)
        if cfg.eval.compare_initial:
            policy = self.seats[0].policy
            initial = start_worker(worker_spec(cfg, policy, self.model_paths[policy], trainable=False),
                                   use_ray=False)
            saved = self.engine.handles[policy]
            self.engine.handles[policy] = initial
            try:
                table["initial"] = self.evaluate(self.eval_player(), cfg.eval.final_opponents, cfg.eval.final_games, seed)
            finally:
                self.engine.handles[policy] = saved
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
        self.workers = {}

