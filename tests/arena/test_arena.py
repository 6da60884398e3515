"""`mas arena`: the arena file's checks (no training), the numbers of finished runs and the report
on hand-written run folders (expectations computed by hand), and one tiny real arena end to end."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from mas.arena.collect import collect_run, grad_norm_series
from mas.arena.command import run_arena
from mas.arena.runner import clear_partial, config_drift, record_time, run_state
from mas.arena.spec import ArenaError, expand, flatten, load_spec
from mas.arena.stats import curve_auc, mean_interval, spike_count, t_critical
from mas.cli import main
from mas.training.advantages import available_estimators

ROOT = Path(__file__).resolve().parents[2]
BASE = str(ROOT / "configs" / "arena" / "tictactoe_base.yaml")  # the shipped arena's base run
MATH = str(ROOT / "configs" / "math_loop.yaml")


def _arena(tmp_path: Path, body: dict, name: str = "arena.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"arena": body}, sort_keys=False))
    return str(path)


def _errors(path: str, overrides=()) -> list[str]:
    with pytest.raises(ArenaError) as exc:
        load_spec(path, list(overrides))
    return exc.value.lines


# --- the arena file -----------------------------------------------------------------------------

def test_shipped_arenas_build_every_run():
    for path, runs in (("configs/arena/tictactoe.yaml", 3), ("configs/arena/math.yaml", 3)):
        spec = load_spec(str(ROOT / path))
        assert len(spec.runs) == runs * len(spec.entries) and len(spec.seeds) >= 3
        seeupo = next(p.config for p in spec.runs if p.label == "seeupo")
        assert seeupo.training.update == "seeupo" and seeupo.training.loss.clip_low == 0.2
        dr = next(p.config for p in spec.runs if p.label == "dr_grpo")
        assert dr.training.estimator == "dr_grpo" and dr.training.loss.agg == "seq-mean-token-sum-norm"
        # seed by seed: every entry's seed 0 before any seed 1
        assert [p.seed for p in spec.runs[: len(spec.entries)]] == [0] * len(spec.entries)


def test_entries_default_to_their_label_and_layer_overrides(tmp_path):
    path = _arena(tmp_path, {
        "base": BASE, "out": str(tmp_path / "out"), "seeds": [4, 7],
        "overrides": {"training.iterations": 3, "eval": {"every": 2}},
        "entries": {"grpo": {}, "tokensum": {"training.estimator": "dr_grpo", "training.loss.agg": "seq-mean-token-sum-norm"},
                    "ngrpo": {"training.estimator_args": {"max_reward": 1.25}}},
    })
    spec = load_spec(path)
    cfgs = {(p.label, p.seed): p.config for p in spec.runs}
    assert set(cfgs) == {(label, s) for label in ("grpo", "tokensum", "ngrpo") for s in (4, 7)}
    grpo = cfgs["grpo", 7]
    assert grpo.training.estimator == "grpo" and grpo.training.iterations == 3 and grpo.eval.every == 2
    assert grpo.run.seed == 7 and grpo.run.dir == str(tmp_path / "out" / "grpo" / "seed-7")
    assert cfgs["tokensum", 4].training.estimator == "dr_grpo"
    assert cfgs["ngrpo", 4].training.estimator_args == {"max_reward": 1.25}
    # command-line overrides of the arena file, with or without the `arena.` prefix
    spec = load_spec(path, ["seeds=[1]", "arena.overrides.training.iterations=5",
                            "entries.ngrpo.training.estimator_args.max_reward=2"])
    assert [(p.label, p.seed, p.config.training.iterations) for p in spec.runs][:1] == [("grpo", 1, 5)]
    assert next(p for p in spec.runs if p.label == "ngrpo").config.training.estimator_args == {"max_reward": 2}


def test_dotted_keys_expand_and_flatten_to_the_same_leaves():
    nested = expand({"training.loss.agg": "x", "training": {"iterations": 3, "estimator_args": {"a": 1}}, "e": {}})
    assert nested == {"training": {"loss": {"agg": "x"}, "iterations": 3, "estimator_args": {"a": 1}}, "e": {}}
    assert flatten(nested) == {"training.loss.agg": "x", "training.iterations": 3,
                               "training.estimator_args.a": 1, "e": {}}


def test_one_line_per_mistake(tmp_path):
    path = _arena(tmp_path, {"base": BASE, "sedes": [0], "seeds": [],
                             "entries": {"nosuch": {}, "grpo": {"training.itrations": 3},
                                         "ngrpo": {"training.estimator_args": {"max_rewar": 1}}}})
    lines = _errors(path)
    assert len(lines) == 5, lines
    unknown, seeds, estimator, override, option = lines
    assert "arena.sedes: unknown key" in unknown and "did you mean 'seeds'" in unknown
    assert "arena.seeds" in seeds and "at least 1 seed" in seeds
    assert "arena.entries.nosuch: estimator 'nosuch' is not registered" in estimator
    assert estimator.endswith("registered: " + ", ".join(available_estimators()))
    assert "arena.entries.grpo" in override and "training.itrations" in override
    assert "arena.entries.ngrpo" in option and "max_rewar" in option and "max_reward" in option
    assert all(line.startswith(path) and "\n" not in line for line in lines)


def test_no_entries_missing_base_and_bad_shared_override(tmp_path):
    assert any("no entries" in x for x in _errors(_arena(tmp_path, {"base": BASE, "entries": {}})))
    assert any("arena.base: config file 'nope.yaml' not found" in x
               for x in _errors(_arena(tmp_path, {"base": "nope.yaml", "entries": {"grpo": {}}})))
    lines = _errors(_arena(tmp_path, {"base": BASE, "overrides": {"training.iterations": 0},
                                      "entries": {"grpo": {}, "mars": {}}}))
    assert lines == [f"{tmp_path / 'arena.yaml'}: arena.overrides: training.iterations: must be > 0, got 0"]
    lines = _errors(_arena(tmp_path, {"base": BASE, "seeds": [0, 0], "entries": {"a.b": {}}}))
    assert any("each seed once" in x for x in lines) and any("arena.entries.a.b" in x for x in lines)


def test_cli_prints_each_mistake_and_exits_2(tmp_path, capsys):
    path = _arena(tmp_path, {"base": BASE, "seeds": [], "entries": {"nosuch": {}}})
    with pytest.raises(SystemExit) as exc:
        main(["arena", path])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(x.startswith("mas: error: ") for x in err) and "Traceback" not in "".join(err)
    good = _arena(tmp_path, {"base": BASE, "entries": {"grpo": {}}}, "good.yaml")
    with pytest.raises(SystemExit):
        main(["arena", good, "--only", "mars"])
    assert "--only: unknown entry 'mars'; entries: grpo" in capsys.readouterr().err


# --- the numbers ---------------------------------------------------------------------------------

def test_stats_by_hand():
    assert curve_auc([(0, 0.5), (2, 0.7), (4, 0.6)]) == pytest.approx((0.5 + 0.7 + 0.7 + 0.6) / 4)
    assert curve_auc([(4, 0.6), (0, 0.5), (2, 0.7)]) == pytest.approx(0.625)  # order does not matter
    assert curve_auc([(3, 0.4)]) == 0.4 and curve_auc([]) is None
    assert spike_count([1.0, 1.0, 10.0, 1.0]) == 1  # median 1: only 10 exceeds 3


def test_spike_definition_edges():
    assert spike_count([1.0, 2.0, 6.0, 7.0]) == 0  # median 4, limit 12
    assert spike_count([1.0, 2.0, 3.0, 4.0], factor=1.5) == 1  # median 2.5, limit 3.75: only 4
    assert spike_count([1.0, 1.0, 3.0]) == 0  # exactly 3x the median is not a spike
    assert spike_count([]) == 0


def test_t_interval_by_hand():
    assert t_critical(2) == pytest.approx(4.3027) and t_critical(40) == pytest.approx(2.0211, abs=2e-4)
    stat = mean_interval([0.6, 0.7, 0.8])  # s = 0.1, half = 4.3027 * 0.1 / sqrt(3)
    assert stat["mean"] == pytest.approx(0.7) and stat["n"] == 3
    assert stat["hi"] - stat["mean"] == pytest.approx(4.3027 * 0.1 / math.sqrt(3))
    assert mean_interval([0.4]) == {"mean": 0.4, "lo": None, "hi": None, "n": 1}
    assert mean_interval([])["n"] == 0


# Synthetic run folders: what `mas train` leaves (summary.json, eval_final.json, config.yaml) and
# what the arena writes (arena_time.json).
GAME_FINAL = {1: (0.6, 0.2), 2: (0.7, 0.1), 3: (0.8, 0.3)}  # seed -> (vs random, vs mcts:100)


def _write_run(run_dir: Path, history: list[dict], eval_final: dict, agents: list[tuple[str, str]], seconds: float):
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps({"history": history, "total_seconds": seconds + 99}))
    (run_dir / "eval_final.json").write_text(json.dumps(eval_final))
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"agents": [{"name": a, "policy": p} for a, p in agents]}))
    record_time(run_dir, seconds, 0, None)


def _game_history(norms: list[float], curve: list[tuple[int, float]]) -> list[dict]:
    rows = {it: {"iteration": it} for it in range(len(norms) + 1)}
    for it, norm in enumerate(norms, 1):
        rows[it]["train/main/grad_norm"] = norm
    for it, value in curve:
        rows[it]["eval/random/non_loss"] = value
        rows[it]["eval/random/win"] = value / 2
    return list(rows.values())


def test_collect_a_game_run(tmp_path):
    run = tmp_path / "run"
    _write_run(run, _game_history([1.0, 1.0, 10.0, 1.0], [(0, 0.5), (2, 0.7), (4, 0.6)]),
               {"trained": {"random": {"non_loss": 0.8, "win": 0.5}, "mcts:100": {"non_loss": 0.2}}, "seconds": 3},
               [("player", "main")], 42.0)
    got = collect_run(run)
    assert got["curve_metric"] == "eval/random/non_loss" and got["curve"] == [[0, 0.5], [2, 0.7], [4, 0.6]]
    assert got["metrics"] == {"final/random/non_loss": 0.8, "final/mcts:100/non_loss": 0.2,
                              "auc": pytest.approx(0.625), "grad_norm_max/player": 10.0,
                              "grad_spikes/player": 1.0, "wall_s": 42.0}
    assert collect_run(tmp_path / "missing") is None


def test_grad_norms_per_agent_on_shared_and_own_policies():
    history = [{"iteration": 1, "train/shared/grad_norm": 5.0, "train/shared/grad_norm/solver": 1.0,
                "train/shared/grad_norm/verifier": 2.0, "train/own/grad_norm": 3.0},
               {"iteration": 2, "train/shared/grad_norm": 6.0, "train/shared/grad_norm/solver": 4.0,
                "train/shared/grad_norm/verifier": 2.5, "train/own/grad_norm": 0.5}]
    series = grad_norm_series(history, {"solver": "shared", "verifier": "shared", "judge": "own"})
    assert series == {"judge": [3.0, 0.5], "solver": [1.0, 4.0], "verifier": [2.0, 2.5]}


def test_report_on_synthetic_runs(tmp_path, capsys):
    out = tmp_path / "out"
    path = _arena(tmp_path, {"name": "synthetic", "base": BASE, "seeds": [1, 2, 3], "out": str(out),
                             "entries": {"grpo": {}, "mars": {}, "rae": {}}})
    spec = load_spec(path)
    curves = {1: [(0, 0.5), (2, 0.7), (4, 0.6)], 2: [(0, 0.5), (2, 0.5), (4, 0.5)], 3: [(0, 0.5), (2, 0.9), (4, 0.7)]}
    for seed, (vs_random, vs_mcts) in GAME_FINAL.items():
        final = {"trained": {"random": {"non_loss": vs_random}, "mcts:100": {"non_loss": vs_mcts}}}
        norms = [1.0, 1.0, 10.0 * seed, 1.0]
        _write_run(spec.run_dir("grpo", seed), _game_history(norms, curves[seed]), final, [("player", "main")], 10.0 * seed)
    # mars: one finished seed only; rae: none
    _write_run(spec.run_dir("mars", 1), _game_history([2.0, 2.0], [(0, 0.4), (2, 0.8)]),
               {"trained": {"random": {"non_loss": 0.9}, "mcts:100": {"non_loss": 0.4}}}, [("player", "main")], 5.0)

    assert run_arena(path, report_only=True) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "arena.json").read_text())
    grpo = report["entries"]["grpo"]
    assert grpo["n"] == 3 and [r["seed"] for r in grpo["runs"]] == [1, 2, 3]
    half = 4.3027 * 0.1 / math.sqrt(3)  # vs random: 0.6, 0.7, 0.8
    final = grpo["summary"]["final/random/non_loss"]
    assert final["mean"] == pytest.approx(0.7) and final["lo"] == pytest.approx(0.7 - half)
    aucs = [0.625, 0.5, (0.5 + 0.9 + 0.9 + 0.7) / 4]
    assert [r["metrics"]["auc"] for r in grpo["runs"]] == pytest.approx(aucs)
    assert grpo["summary"]["auc"]["mean"] == pytest.approx(sum(aucs) / 3)
    assert grpo["summary"]["grad_norm_max/player"]["mean"] == pytest.approx(20.0)  # 10, 20, 30
    assert grpo["summary"]["grad_spikes/player"]["mean"] == 1.0
    assert grpo["summary"]["wall_s"]["mean"] == pytest.approx(20.0)
    assert grpo["curve"]["iterations"] == [0, 2, 4] and grpo["curve"]["mean"] == pytest.approx([0.5, 0.7, 0.6])
    assert grpo["curve"]["lo"][0] == pytest.approx(0.5)  # no spread at iteration 0
    mars = report["entries"]["mars"]
    assert mars["n"] == 1 and mars["summary"]["final/random/non_loss"] == {"mean": 0.9, "lo": None, "hi": None, "n": 1}
    assert report["entries"]["rae"]["n"] == 0 and "rae/seed-1" in report["missing"]
    assert report["curve_metric"] == "eval/random/non_loss"

    table = (out / "arena.md").read_text()
    assert "| entry | estimator | n | final non-loss vs random | final non-loss vs mcts:100 | AUC of eval/random/non_loss" in table
    assert "spikes >3x median (player)" in table and "95% Student t" in table
    assert f"| grpo | grpo | 3 | 0.700 [{0.7 - half:.3f}, {0.7 + half:.3f}] |" in table
    assert "| mars | mars | 1 | 0.900 | 0.400 |" in table and "| rae |" not in table
    assert "| grpo | grpo | 3 |" in printed
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_on_a_workflow_run(tmp_path):
    out = tmp_path / "out"
    path = _arena(tmp_path, {"base": MATH, "seeds": [0, 1], "out": str(out), "entries": {"drmas": {}}})
    spec = load_spec(path)
    for seed, acc in ((0, 0.2), (1, 0.4)):
        history = [{"iteration": 0, "eval/team/accuracy": 0.1},
                   {"iteration": 1, "train/solver_model/grad_norm": 1.0, "train/verifier_model/grad_norm": 4.0},
                   {"iteration": 2, "train/solver_model/grad_norm": 2.0, "train/verifier_model/grad_norm": 5.0,
                    "eval/team/accuracy": acc}]
        _write_run(spec.run_dir("drmas", seed), history, {"trained": {"accuracy": acc + 0.1}},
                   [("solver", "solver_model"), ("verifier", "verifier_model")], 1.0)
    assert run_arena(path, report_only=True, echo=lambda _: None) == 0
    entry = json.loads((out / "arena.json").read_text())["entries"]["drmas"]
    assert entry["summary"]["final/accuracy"]["mean"] == pytest.approx(0.4)
    assert [r["metrics"]["auc"] for r in entry["runs"]] == pytest.approx([0.15, 0.25])
    assert entry["summary"]["grad_norm_max/verifier"]["mean"] == 5.0
    assert "| drmas | drmas | 2 | 0.400 [" in (out / "arena.md").read_text()


def test_report_only_without_runs(tmp_path):
    path = _arena(tmp_path, {"base": BASE, "out": str(tmp_path / "out"), "entries": {"grpo": {}}})
    lines = []
    assert run_arena(path, report_only=True, echo=lines.append) == 1
    assert "no finished runs" in lines[-1]


# --- the runner without training -----------------------------------------------------------------

def test_run_state_and_restart_from_scratch(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert run_state(run) == ("fresh", None)
    (run / "config.yaml").write_text("x: 1\n")
    (run / "train.log").write_text("first attempt\n")
    (run / "step-3.staging").mkdir()
    clear_partial(run)
    assert sorted(p.name for p in run.iterdir()) == ["train.log"]
    (run / "step-2").mkdir()
    (run / "step-2" / "COMMITTED").write_text("")
    assert run_state(run) == ("resume", run / "step-2")
    (run / "summary.json").write_text("{}")
    assert run_state(run) == ("finished", None)
    first = record_time(run, 10.0, 1, None)
    assert record_time(run, 5.5, 0, run / "step-2")["seconds"] == 15.5 and len(first["attempts"]) == 1


def test_config_drift_names_the_changed_setting(tmp_path):
    from mas.config import to_yaml
    from mas.validation import load_config

    cfg = load_config(BASE, ["training.iterations=3"])
    (tmp_path / "config.yaml").write_text(to_yaml(cfg))
    assert config_drift(tmp_path, cfg) is None
    assert config_drift(tmp_path, load_config(BASE, ["training.iterations=4"])) == \
        "training.iterations is 3 there, 4 now"


# --- one real arena --------------------------------------------------------------------------------

TINY = {"training.iterations": 1, "rollout.episodes": 4, "training.mini_batches": 1, "eval.every": 1,
        "eval.games": 2, "eval.final_games": 2, "eval.final_opponents": ["random"], "eval.compare_initial": False,
        "ray.enabled": False, "policies.main.resources.threads": 1}


def test_tiny_arena_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "out"
    path = _arena(tmp_path, {"name": "tiny", "base": BASE, "overrides": TINY, "seeds": [0, 1], "out": str(out),
                             "entries": {"grpo": {}, "tokensum": {"training.estimator": "dr_grpo",
                                                                  "training.loss.agg": "seq-mean-token-sum-norm"}}})
    assert main(["arena", path, "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "[4/4]" in printed and "ETA" in printed
    for name in ("arena.md", "arena.json", "curves.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "arena.json").read_text())
    assert {k: e["n"] for k, e in report["entries"].items()} == {"grpo": 2, "tokensum": 2}
    run = report["entries"]["tokensum"]["runs"][0]
    assert run["curve"][0][0] == 0 and run["curve"][-1][0] == 1 and run["metrics"]["wall_s"] > 0
    assert "grad_norm_max/player" in run["metrics"] and "final/random/non_loss" in run["metrics"]
    saved = yaml.safe_load((out / "tokensum" / "seed-1" / "config.yaml").read_text())
    assert saved["training"]["estimator"] == "dr_grpo" and saved["run"]["seed"] == 1

    # again: every run is finished, nothing trains
    assert main(["arena", path]) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished earlier, skipped") == 4 and "training ->" not in printed
    assert "warning" not in printed  # the saved configs match what the arena file builds
    timing = json.loads((out / "grpo" / "seed-0" / "arena_time.json").read_text())
    assert len(timing["attempts"]) == 1
    assert "| grpo | grpo | 2 |" in printed
    # a changed budget: the finished runs are kept and named as trained with other settings
    assert main(["arena", path, "--report-only"]) == 0 and "warning" not in capsys.readouterr().out
    assert main(["arena", path, "overrides.training.iterations=2", "--only", "grpo"]) == 0
    assert "training.iterations is 1 there, 2 now" in capsys.readouterr().out


@pytest.mark.slow
def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, capsys):
    out = tmp_path / "out"
    path = _arena(tmp_path, {"base": BASE, "overrides": {**TINY, "training.iterations": 2, "run.save_every": 1},
                             "seeds": [0], "out": str(out), "entries": {"grpo": {}}})
    assert main(["arena", path]) == 0
    run = out / "grpo" / "seed-0"
    history = json.loads((run / "summary.json").read_text())["history"]
    (run / "summary.json").unlink()  # as if killed after its last checkpoint
    assert main(["arena", path]) == 0
    assert "resuming from step-2" in capsys.readouterr().out
    assert json.loads((run / "summary.json").read_text())["history"] == history
    assert len(json.loads((run / "arena_time.json").read_text())["attempts"]) == 2
