"""What a training run measures, chosen by its env: every `eval.every` iterations (`periodic`) and
once at the end (`final`). Each evaluator plays the run's agents through the rollout engine it is
handed, on seeds of its own, so evaluation never changes what training samples.

- `OpponentEvaluator` (games): the learner's non-loss rates against the evaluation bots; the
  final table compares the trained model, the untrained one and the random bot.
- `MixtureEvaluator` (several games at once): per game, non-loss against the bots that apply to it
  and the greedy self-play score of cooperative games.
- `SelfEvaluator` (envs that evaluate themselves, e.g. attacker/defender): the agents on every seat,
  the env's own episode metrics.
- `TeamEvaluator` (workflows): the system's accuracy on fresh problems (or the training pool)."""
from __future__ import annotations

import numpy as np

from mas.agents import bots
from mas.config import Config
from mas.evaluation.exact import ExactEvaluation, format_report, model_policies, report_metrics
from mas.evaluation.games import MatchResult, eval_agent, format_table, play_matches
from mas.evaluation.workflows import format_accuracy_table, team_accuracy
from mas.orchestration.matchmaking import GameSlot
from mas.orchestration.rollout import EpisodeSpec, RolloutEngine
from mas.seeding import EVAL_EPISODE_IDS, EVAL_STREAM, FINAL_EVAL_STREAM, stable_seed

__all__ = ["Evaluator", "make_evaluator"]


class Evaluator:
    """`initial_copies(policies)` gives handles serving the untrained weights of `policies`."""

    def __init__(self, cfg: Config, games: list[GameSlot], task_seeds: list[int] | None = None):
        self.cfg, self.games, self.task_seeds = cfg, games, task_seeds
        self.env, self.seats = games[0].env, games[0].seats

    def periodic(self, engine: RolloutEngine, done: int) -> dict[str, float]:
        """Metrics after `done` iterations (0: the untrained starting point)."""
        raise NotImplementedError

    def has_final(self) -> bool:
        return bool(self.cfg.eval.final_games and self.cfg.eval.final_opponents)

    def final(self, engine: RolloutEngine, initial_copies) -> dict:
        """The final table: printed, and returned as JSON-ready data."""
        raise NotImplementedError

    def _seed(self, done: int) -> int:
        return stable_seed(self.cfg.run.seed, EVAL_STREAM, done)

    def _final_seed(self) -> int:
        return stable_seed(self.cfg.run.seed, FINAL_EVAL_STREAM)

    def _eval_player(self):
        """The learner as it plays in evaluation: the agent on seat 0, at the evaluation temperature."""
        return eval_agent(self.seats[0], self.cfg.eval.temperature)


class OpponentEvaluator(Evaluator):
    def __init__(self, cfg: Config, games: list[GameSlot], task_seeds: list[int] | None = None):
        super().__init__(cfg, games, task_seeds)
        specs = dict.fromkeys(cfg.eval.opponents + cfg.eval.final_opponents)
        self.bots = {spec: bots.make(spec, self.env) for spec in specs}  # an unusable bot fails before training
        self.exact: ExactEvaluation | None = None  # walked at the first evaluation
        self.exact_last: tuple[int, dict] | None = None  # (iterations done, metrics) of the latest
        if cfg.eval.exact:
            self._check_exact()

    def _check_exact(self) -> None:
        """eval.exact's mistakes, before training: a game that cannot be enumerated, free text."""
        from mas.evaluation.exact import make_policy

        learner = self.seats[0]
        if not learner.constrained:
            raise ValueError(f"eval.exact reads constrained answer probabilities: agent '{learner.name}' needs "
                             "sampling.constrained: true")
        self.env.reset_explicit_chance()
        for spec in self.cfg.eval.exact_opponents:
            make_policy(spec, self.env)

    def exact_metrics(self, engine: RolloutEngine, handle=None) -> tuple[dict[str, float], object]:
        """The learner's exact figures (its sampling settings and greedy) with the current weights,
        or those `handle` serves."""
        learner = self.seats[0]
        handle = handle or engine.handles.get(learner.policy)
        if self.exact is None:
            policies = model_policies(learner.policy, handle, engine.prompts[learner.policy].tokenizer, learner,
                                      max_prompts=self.cfg.eval.exact_max_states)
            self.exact = ExactEvaluation(self.env, list(policies), self.cfg.eval.exact_opponents or None,
                                         max_states=self.cfg.eval.exact_max_states)
        else:
            self.exact.rescore(handle)
        report = self.exact.report()
        return report_metrics(report), report

    def against(self, engine: RolloutEngine, player, opponents: list[str], games: int, seed: int) -> dict[str, MatchResult]:
        return {spec: play_matches(engine, player, self.bots[spec], self.env.num_seats, games, stable_seed(seed, i))[0]
                for i, spec in enumerate(opponents)}

    def periodic(self, engine: RolloutEngine, done: int) -> dict[str, float]:
        results = self.against(engine, self._eval_player(), self.cfg.eval.opponents, self.cfg.eval.games, self._seed(done))
        metrics = {f"eval/{spec}/{key}": res.overall[key]
                   for spec, res in results.items() for key in ("win", "draw", "loss", "invalid", "non_loss")}
        if self.cfg.eval.exact:
            exact, report = self.exact_metrics(engine)
            self.exact_last = (done, report)
            metrics.update(exact)
        return metrics

    def has_final(self) -> bool:
        return super().has_final() or self.cfg.eval.exact

    def final(self, engine: RolloutEngine, initial_copies) -> dict:
        out: dict = {}
        if super().has_final():
            out.update(self._final_games(engine, initial_copies))
        if self.cfg.eval.exact:
            out["exact"] = self._final_exact(engine, initial_copies)
        return out

    def _final_games(self, engine: RolloutEngine, initial_copies) -> dict:
        cfg, seed = self.cfg.eval, self._final_seed()
        table = {"trained": self.against(engine, self._eval_player(), cfg.final_opponents, cfg.final_games, seed)}
        if cfg.compare_initial:
            untrained = engine.serving(initial_copies([self.seats[0].policy]))
            table["initial"] = self.against(untrained, self._eval_player(), cfg.final_opponents, cfg.final_games, seed)
            table["random-bot"] = self.against(engine, bots.make("random", self.env), cfg.final_opponents,
                                               cfg.final_games, seed)
        print("\nfinal evaluation (95% Wilson intervals; an invalid game counts as a loss)")
        print(format_table(table))
        return {player: {opp: r.to_json() for opp, r in results.items()} for player, results in table.items()}

    def _final_exact(self, engine: RolloutEngine, initial_copies) -> dict:
        """The trained learner's exact table (the last evaluation's when it saw the final
        weights) and, with compare_initial, the untrained model's."""
        done = self.cfg.training.iterations
        if self.exact_last is not None and self.exact_last[0] == done:
            trained = self.exact_last[1]
        else:
            trained = self.exact_metrics(engine)[1]
        reports = {"trained": trained}
        if self.cfg.eval.compare_initial:
            policy = self.seats[0].policy
            reports["initial"] = self.exact_metrics(engine, handle=initial_copies([policy])[policy])[1]
        for name, report in reports.items():
            print(f"\nfinal exact evaluation ({name} model)")
            print(format_report(report))
        return {name: report.to_json() for name, report in reports.items()}


class MixtureEvaluator(OpponentEvaluator):
    def periodic(self, engine: RolloutEngine, done: int) -> dict[str, float]:
        """Each game of the mixture: non-loss rates against the evaluation bots that apply to it,
        and the mean score of greedy self-play in cooperative games (Hanabi)."""
        seed, out = self._seed(done), {}
        for i, slot in enumerate(self.games):
            player = eval_agent(slot.seats[0], self.cfg.eval.temperature)
            if slot.env.cooperative:
                specs = [EpisodeSpec(EVAL_EPISODE_IDS + k, EVAL_EPISODE_IDS + k, stable_seed(seed, i, k),
                                     [player] * slot.env.num_seats, env=slot.env) for k in range(self.cfg.eval.games)]
                episodes, _ = engine.play(specs, seed=stable_seed(seed, i))
                out[f"eval/{slot.env.id}/selfplay_score"] = float(np.mean([ep.game_returns[0] for ep in episodes]))
                continue
            for j, spec in enumerate(self.cfg.eval.opponents):
                try:
                    bot = bots.make(spec, slot.env)
                except ValueError:
                    continue  # e.g. MCTS on a game with step rewards
                res, _ = play_matches(engine, player, bot, slot.env.num_seats, self.cfg.eval.games,
                                      stable_seed(seed, i, j), env=slot.env)
                out[f"eval/{slot.env.id}/{spec}/non_loss"] = res.overall["non_loss"]
                out[f"eval/{slot.env.id}/{spec}/invalid"] = res.overall["invalid"]
        return out


class SelfEvaluator(OpponentEvaluator):
    def periodic(self, engine: RolloutEngine, done: int) -> dict[str, float]:
        """The agents on every seat; the env reports the score (e.g. attack success, accuracy)."""
        seed = self._seed(done)
        players = [eval_agent(a, self.cfg.eval.temperature) for a in self.seats]
        specs = [EpisodeSpec(EVAL_EPISODE_IDS + k, EVAL_EPISODE_IDS + k, stable_seed(seed, k), players)
                 for k in range(self.cfg.eval.games)]
        episodes, _ = engine.play(specs, seed=seed)
        metrics = self.env.episode_metrics([ep.info for ep in episodes])
        return {f"eval/{k.split('/', 1)[1]}": v for k, v in metrics.items()}


class TeamEvaluator(Evaluator):
    def accuracy(self, engine: RolloutEngine, games: int, seed: int) -> dict:
        players = [eval_agent(a, self.cfg.eval.temperature) for a in self.seats]
        tasks = self.task_seeds if self.cfg.eval.tasks == "pool" else None
        return team_accuracy(engine, players, games, seed, tasks=tasks)

    def periodic(self, engine: RolloutEngine, done: int) -> dict[str, float]:
        r = self.accuracy(engine, self.cfg.eval.games, self._seed(done))
        return {"eval/team/accuracy": r["accuracy"], "eval/team/invalid": r["invalid"]}

    def has_final(self) -> bool:
        return bool(self.cfg.eval.final_games)

    def final(self, engine: RolloutEngine, initial_copies) -> dict:
        games, seed = self.cfg.eval.final_games, self._final_seed()
        rows = {"trained": self.accuracy(engine, games, seed)}
        if self.cfg.eval.compare_initial:
            rows["initial"] = self.accuracy(engine.serving(initial_copies(list(self.cfg.policies))), games, seed)
        print("\nfinal evaluation (95% Wilson intervals)")
        print(format_accuracy_table(rows))
        return dict(rows)


def make_evaluator(cfg: Config, games: list[GameSlot], task_seeds: list[int] | None = None) -> Evaluator:
    """The evaluator for the run's env(s)."""
    env = games[0].env
    if cfg.eval.exact and (env.team or len(games) > 1 or env.evaluates_itself):
        raise ValueError("eval.exact evaluates one game played against opponents; this run's env "
                         + ("is a workflow" if env.team else "is a mixture" if len(games) > 1 else "evaluates itself"))
    if env.team:
        return TeamEvaluator(cfg, games, task_seeds)
    if len(games) > 1:
        return MixtureEvaluator(cfg, games, task_seeds)
    if env.evaluates_itself:
        return SelfEvaluator(cfg, games, task_seeds)
    return OpponentEvaluator(cfg, games, task_seeds)
