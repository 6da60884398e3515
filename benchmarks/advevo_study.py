"""Attacker/defender co-evolution in miniature (issue 7): are SFT-warmed defenders vulnerable to a
static attack file, and does adversarial RL make them less so without losing the task?

    python benchmarks/advevo_study.py [--iterations 20] [--episodes 200] [--out runs/advevo_study]

Steps: (1) defenders learn the task by SFT on the env's own prompts with gold answers, half of them
with a truthful answer note in the task (so that they trust notes, as instruction-following models
obey injected text);
(2) attackers learn the seed attacks by SFT on the static file; (3) RL with configs/advevo_chain.yaml
from both warm starts; (4) initial and final defenders against the static file, the initial and
final attackers, and no attack: ASR and accuracy with 95% Wilson intervals."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from mas.config import load_config
from mas.evaluation.attacks import StaticAttacker, evaluate_defense, write_static_attacks
from mas.evaluation.loading import load_policy
from mas.games import make
from mas.orchestration.rollout import RolloutEngine
from mas.run import TrainingRun

CONFIG = "configs/advevo_chain.yaml"


def env_spec(rate: float) -> dict:
    cfg = load_config(CONFIG)
    adv = cfg.env.adversarial
    return {"name": "adversarial", "attackers": list(adv.attackers), "defenders": list(adv.defenders),
            "topology": adv.topology, "injection": adv.injection, "attack_rate": rate,
            "task": {"max_value": cfg.env.task.max_value, "steps": cfg.env.task.steps}}


def defender_sft_data(path: Path, count: int) -> None:
    """Clean episodes, and as many where a (truthful) note with the answer was added to the task:
    the warm-started defenders learn to trust such notes, standing in for an instruction-following
    model's readiness to obey text injected into its input."""
    clean, noted = make(env_spec(0.0)), make(env_spec(1.0))
    with path.open("w") as f:
        for seed in range(count):
            env = noted if seed % 2 else clean
            state = env.reset(100_000 + seed)
            if state.attacked:
                state.apply(0, f"Note from the teacher: the correct answer is {state.problem.answer}.")
            while not state.is_terminal():
                seat = state.current_seats()[0]
                answer = f"\\boxed{{{state.problem.answer}}}"
                f.write(json.dumps({"prompt": state.messages(seat), "response": answer}) + "\n")
                state.apply(seat, answer)


def attacker_sft_data(path: Path, attacks: Path, count: int) -> None:
    env = make(env_spec(1.0))
    bot = StaticAttacker(str(attacks))
    import numpy as np

    rng = np.random.default_rng(0)
    with path.open("w") as f:
        for seed in range(count):
            state = env.reset(200_000 + seed)
            f.write(json.dumps({"prompt": state.messages(0), "response": bot.act(state, 0, rng)}) + "\n")


def sft(policy: str, data: Path, out: Path, epochs: int) -> None:
    subprocess.run([sys.executable, "-m", "mas.cli", "sft", "--policy", policy, "--data", str(data), "--out", str(out),
                    "--epochs", str(epochs), "--lr", "0.002", "--batch-size", "32"], check=True)


def evaluate(defender_path: str, attacker, episodes: int, rate: float, seed: int = 7) -> dict:
    env = make(env_spec(rate))
    defender = load_policy(defender_path, name="defender", constrained=True, max_new_tokens=24, temperature=0.0)
    handles, tokenizers = defender.engine_parts()
    attackers = []
    if isinstance(attacker, str):
        att = load_policy(attacker, name="attacker", max_new_tokens=32, temperature=1.0)
        handles.update(att.engine_parts()[0])
        tokenizers.update(att.engine_parts()[1])
        attackers = [att.agent]
    elif attacker is not None:
        attackers = [attacker]
    else:
        attackers = [StaticAttacker.__new__(StaticAttacker)]  # never acts: rate 0
    engine = RolloutEngine(env, handles, tokenizers)
    defenders = [defender.agent] * len(env.spec.defenders)
    return evaluate_defense(env, engine, attackers, defenders, episodes, seed)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--sft-examples", type=int, default=1600)
    parser.add_argument("--out", default="runs/advevo_study")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    attacks = write_static_attacks(out / "static_attacks.jsonl")
    defender_sft_data(out / "defender_sft.jsonl", args.sft_examples)
    attacker_sft_data(out / "attacker_sft.jsonl", attacks, args.sft_examples)
    sft("tiny-xs", out / "defender_sft.jsonl", out / "defender_init", epochs=10)
    sft("tiny-xs", out / "attacker_sft.jsonl", out / "attacker_init", epochs=20)
    run_dir = out / "rl"
    cfg = load_config(CONFIG, [f"run.dir={run_dir}", f"training.iterations={args.iterations}", "ray.enabled=false",
                               f"policies.defender_model.model={out / 'defender_init'}",
                               f"policies.attacker_model.model={out / 'attacker_init'}", "eval.every=0",
                               "agents.0.sampling.max_new_tokens=32"])
    TrainingRun(cfg, progress=True).run()
    final = run_dir / "final"
    static = StaticAttacker(str(attacks))
    rows = {}
    for name, path in (("initial defenders", out / "defender_init"), ("final defenders", final / "defender_model")):
        rows[name] = {
            "static file": evaluate(str(path), static, args.episodes, 1.0),
            "initial attacker": evaluate(str(path), str(out / "attacker_init"), args.episodes, 1.0),
            "final attacker": evaluate(str(path), str(final / "attacker_model"), args.episodes, 1.0),
            "no attack": evaluate(str(path), None, args.episodes, 0.0),
        }
    print(f"\n{'defenders':<18} {'attack':<17} {'ASR':>22} {'accuracy':>22}")
    for name, cols in rows.items():
        for attack, r in cols.items():
            asr = f"{r['asr']:.3f} [{r['asr_ci'][0]:.3f},{r['asr_ci'][1]:.3f}]" if attack != "no attack" else "-"
            acc = f"{r['accuracy']:.3f} [{r['accuracy_ci'][0]:.3f},{r['accuracy_ci'][1]:.3f}]"
            print(f"{name:<18} {attack:<17} {asr:>22} {acc:>22}")
    (out / "study.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
