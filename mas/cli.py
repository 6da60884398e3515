"""`mas train | arena | eval | play | score | sft | data | models | bench`: the command line. User mistakes print one line and exit with 2."""
from __future__ import annotations

import argparse
from pathlib import Path
import sys


def _fail(message: str) -> None:
    print(f"mas: error: {message}", file=sys.stderr)
    sys.exit(2)


def cmd_train(args) -> int:
    from mas.config import ConfigError
    from mas.validation import load_config

    try:
        cfg = load_config(args.config, args.overrides)
        from mas.run import TrainingRun

        run = TrainingRun(cfg, progress=not args.no_progress)
        summary = run.run()
    except ConfigError as err:
        _fail(str(err))
    print(f"run folder: {summary['run_dir']}  (training {summary['train_seconds']:.0f} s, "
          f"total {summary['total_seconds']:.0f} s)")
    return 0


def cmd_arena(args) -> int:
    from mas.arena.command import run_arena
    from mas.arena.spec import ArenaError

    try:
        return run_arena(args.config, args.overrides, jobs=args.jobs, only=args.only, report_only=args.report_only)
    except ArenaError as err:
        for line in err.lines:
            print(f"mas: error: {line}", file=sys.stderr)
        sys.exit(2)


def cmd_eval(args) -> int:
    from mas.evaluation.cli import run_eval

    try:
        if args.benchmark:
            from mas.evaluation.reasoning.benchmark_eval import run_benchmark_eval

            return run_benchmark_eval(args)
        if args.attacks:
            from mas.evaluation.attacks import run_attack_eval

            return run_attack_eval(args)
        return run_eval(args)
    except ValueError as err:
        _fail(str(err).splitlines()[0])


def cmd_score(args) -> int:
    from mas.evaluation.reasoning.cli import run_score

    try:
        return run_score(args)
    except ValueError as err:
        _fail(str(err).splitlines()[0])


def cmd_play(args) -> int:
    from mas.evaluation.play import run_play

    try:
        return run_play(args)
    except ValueError as err:
        _fail(str(err).splitlines()[0])


def cmd_sft(args) -> int:
    from mas.sft_command import run_sft

    try:
        return run_sft(args)
    except ValueError as err:
        _fail(str(err).splitlines()[0])


def cmd_data(args) -> int:
    from mas.games.arithmetic import write_problems

    try:
        path = write_problems(args.out, args.count, seed=args.seed, max_value=args.max_value, steps=args.steps)
    except ValueError as err:
        _fail(str(err).splitlines()[0])
    print(f"wrote {args.count} problems to {path}")
    return 0


def cmd_models(args) -> int:
    from mas.agents.models import TINY_MODELS, build_tiny
    from mas.agents.pretrained import PRETRAINED, prepare, prepared_folder

    if args.action == "prepare":
        if not args.name:
            _fail(f"mas models prepare NAME: name a model; known: {', '.join(sorted([*TINY_MODELS, *PRETRAINED]))}")
        try:
            folder = build_tiny(args.name) if args.name in TINY_MODELS else prepare(args.name)
        except ValueError as err:
            _fail(str(err).splitlines()[0])
        print(Path(folder).resolve())
        return 0
    for name, spec in TINY_MODELS.items():
        line = f"{name:<22} built here, random weights: hidden {spec.hidden_size}, layers {spec.num_layers}, heads {spec.num_heads}"
        if args.build:
            line += f"  -> {build_tiny(name)}"
        print(line)
    for name, spec in PRETRAINED.items():
        folder = prepared_folder(name)
        state = f"prepared: {folder}" if (folder / "config.json").is_file() else f"not prepared (pip package {spec.package})"
        print(f"{name:<22} {spec.about}; {state}")
    return 0


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None


def cmd_bench(args) -> int:
    import json

    from mas.bench.report import format_report
    from mas.bench.suite import BenchSettings, run_bench

    settings = BenchSettings(workloads=tuple(args.workloads.split(",")), parts=tuple(args.parts.split(",")),
                             games=args.games, update_games=args.update_games, repeats=args.repeats,
                             scaling_games=args.scaling_games, scaling_policies=args.scaling_policies,
                             threads=args.threads, seed=args.seed)
    if args.tiny:  # the smoke-test size: every code path, seconds of work
        settings.games, settings.update_games, settings.repeats = 4, 4, 1
        settings.scaling_games, settings.scaling_policies = (1, 2), (1, 2)
    try:
        settings.validate()
        result = run_bench(settings, progress=lambda line: print(line, file=sys.stderr, flush=True))
    except ValueError as err:
        _fail(str(err).splitlines()[0])
    print(format_report(result, markdown=args.markdown))
    for line in result["skipped"]:
        print(f"skipped {line}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mas", description="Train LLM agents by self-play and multi-agent RL.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train from a YAML config: mas train CONFIG [key=value ...]")
    train.add_argument("config", help="YAML config file (see configs/ and docs/config.md)")
    train.add_argument("overrides", nargs="*", help="dotted overrides, e.g. training.iterations=5 resume=runs/x")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)

    arena = sub.add_parser("arena", help="compare estimators on one config and budget over seeds (docs/arena.md)")
    arena.add_argument("config", help="arena YAML file, e.g. configs/arena/tictactoe.yaml")
    arena.add_argument("overrides", nargs="*", help="dotted overrides of the arena file, e.g. seeds=[0] "
                       "overrides.training.iterations=2")
    arena.add_argument("--jobs", type=int, default=1, help="trainings at once (default 1)")
    arena.add_argument("--only", default=None, help="train only these entries, comma-separated")
    arena.add_argument("--report-only", action="store_true", help="rebuild the report from finished runs")
    arena.set_defaults(func=cmd_arena)

    ev = sub.add_parser("eval", help="evaluate a checkpoint (or a bot) against fixed opponents, or a suite from YAML")
    ev.add_argument("--policy", default=None, help="a checkpoint folder (Hugging Face model) or built-in model name")
    ev.add_argument("--player", default=None, help="measure a bot instead of a policy, e.g. mcts:100")
    ev.add_argument("--suite", default=None, help="a YAML suite: games x opponents x seats (docs/evaluation.md)")
    ev.add_argument("--env", default="tic_tac_toe", help="a registered env id")
    ev.add_argument("--opponents", default=None,
                    help="comma-separated bots, e.g. random,mcts:100 (default: random; with --exact: random and "
                         "perfect, or random and cfr on Kuhn and Leduc)")
    ev.add_argument("--games", type=int, default=100, help="games per opponent, split evenly across seats (with --attacks: episodes per attack)")
    ev.add_argument("--temperature", type=float, default=0.0,
                    help="sampling temperature (0 = greedy; with --exact: default the checkpoint's training temperature)")
    ev.add_argument("--exact", action="store_true",
                    help="evaluate exactly over the whole game tree instead of playing games (small games; "
                         "docs/evaluation.md)")
    ev.add_argument("--max-states", type=int, default=None,
                    help="with --exact: refuse games with more states (or distinct prompts) than this (default 1,000,000)")
    ev.add_argument("--constrained", action=argparse.BooleanOptionalAction, default=None,
                    help="restrict answers to legal actions (default: as the checkpoint's run config says, else off)")
    ev.add_argument("--max-new-tokens", type=int, default=None)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ev.add_argument("--json", dest="json_path", default=None, help="also write the results as JSON here")
    ev.add_argument("--benchmark", default=None,
                    help="a reasoning benchmark instead of games: gsm8k, math (math500), aime, amc, gpqa, jsonl")
    ev.add_argument("--data", default=None, help="the benchmark file (JSONL, or CSV for gpqa)")
    ev.add_argument("--samples", type=int, default=1, help="samples per item (avg@k, pass@k)")
    ev.add_argument("--limit", type=int, default=None, help="only the first N items")
    ev.add_argument("--topology", default=None, help="a YAML multi-agent workflow to run the benchmark through")
    ev.add_argument("--prompts", default=None, help="a YAML file overriding the benchmark's prompt template")
    ev.add_argument("--responses-out", default=None, help="also write the generated responses as JSONL here")
    ev.add_argument("--attacks", default=None,
                    help="defenders (--policy) of an adversarial env against attacks, comma-separated: static, "
                         "static:FILE, checkpoint:PATH, none (docs/adversarial.md)")
    ev.add_argument("--config", default=None,
                    help="with --attacks: the adversarial run config (default: the run the checkpoint came from)")
    ev.set_defaults(func=cmd_eval)

    score = sub.add_parser("score", help="score responses to a reasoning benchmark produced anywhere")
    score.add_argument("--benchmark", required=True, help="gsm8k, math (math500), aime, amc, gpqa, jsonl")
    score.add_argument("--data", required=True, help="the benchmark file")
    score.add_argument("--responses", required=True, help='JSONL: {"index": i, "response": "..."} per sample')
    score.add_argument("--json", dest="json_path", default=None, help="write the report (and per-item results) here")
    score.add_argument("--seed", type=int, default=0, help="the GPQA option permutation seed")
    score.add_argument("--fields", default=None, help="jsonl: question=FIELD,answer=FIELD")
    score.add_argument("--workers", type=int, default=None, help="scoring processes (default: all cores)")
    score.add_argument("--timeout", type=float, default=5.0, help="seconds per response before it counts as wrong")
    score.set_defaults(func=cmd_score)

    play = sub.add_parser("play", help="play against a checkpoint in the terminal")
    play.add_argument("--policy", required=True, help="a checkpoint folder (Hugging Face model) or built-in model name")
    play.add_argument("--env", default="tic_tac_toe", help="a registered env id")
    play.add_argument("--seat", type=int, default=0, help="your seat (0 moves first)")
    play.add_argument("--temperature", type=float, default=0.0, help="the agent's sampling temperature (0 = greedy)")
    play.add_argument("--constrained", action=argparse.BooleanOptionalAction, default=None,
                      help="restrict the agent's answers to legal actions (default: as its run config says)")
    play.add_argument("--seed", type=int, default=0)
    play.set_defaults(func=cmd_play)

    sft = sub.add_parser("sft", help="supervised fine-tuning from a JSONL file of prompt/response pairs")
    sft.add_argument("--policy", required=True, help="the model to start from: a built-in name or a model folder")
    sft.add_argument("--data", required=True, help='JSONL: {"prompt": text or chat messages, "response": text}')
    sft.add_argument("--out", required=True, help="the model folder to write (use it as policies.NAME.model)")
    sft.add_argument("--epochs", type=int, default=3)
    sft.add_argument("--lr", type=float, default=1e-3)
    sft.add_argument("--batch-size", type=int, default=16)
    sft.add_argument("--seed", type=int, default=0)
    sft.add_argument("--threads", type=int, default=None)
    sft.set_defaults(func=cmd_sft)

    data = sub.add_parser("data", help="write a generated data file: mas data arithmetic OUT.jsonl")
    data.add_argument("kind", choices=["arithmetic"], help="arithmetic: word problems in the GSM8K layout")
    data.add_argument("out", help="the JSONL file to write")
    data.add_argument("--count", type=int, default=100)
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--max-value", type=int, default=20)
    data.add_argument("--steps", type=int, default=1)
    data.set_defaults(func=cmd_data)

    models = sub.add_parser("models", help="list built-in models (mas models list), or prepare one (mas models prepare NAME)")
    models.add_argument("action", nargs="?", choices=["list", "prepare"], default="list")
    models.add_argument("name", nargs="?", default=None, help="with prepare: the model, e.g. smollm2-135m-instruct")
    models.add_argument("--build", action="store_true", help="with list: build the tiny models into the cache now")
    models.set_defaults(func=cmd_models)

    bench = sub.add_parser("bench", help="measure rollout and update speed against baselines (docs/performance.md)")
    bench.add_argument("--workloads", default="tictactoe-tiny,kuhn-tiny,tictactoe-tiny-history",
                       help="comma-separated: tictactoe-tiny, kuhn-tiny, tictactoe-tiny-history, tictactoe-smollm2")
    bench.add_argument("--parts", default="rollout,update,scaling", help="comma-separated: rollout, update, scaling")
    bench.add_argument("--games", type=int, default=64, help="concurrent games of the rollout comparison")
    bench.add_argument("--update-games", type=int, default=128, help="games whose turns form the update batch")
    bench.add_argument("--repeats", type=int, default=5, help="timed repeats per update measurement (median)")
    bench.add_argument("--scaling-games", type=_int_list, default=(1, 8, 64, 256))
    bench.add_argument("--scaling-policies", type=_int_list, default=(1, 2, 4))
    bench.add_argument("--threads", type=int, default=2, help="torch threads")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--tiny", action="store_true", help="a seconds-long smoke run of every part")
    bench.add_argument("--markdown", action="store_true", help="tables as Markdown")
    bench.add_argument("--json", default=None, help="also write the full result here")
    bench.set_defaults(func=cmd_bench)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
