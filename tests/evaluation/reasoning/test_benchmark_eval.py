"""`mas eval --benchmark`: a tiny model answers a generated GSM8K-format file alone and inside a
two-agent solver -> verifier loop, and both are scored in one table."""
from __future__ import annotations

import json

from mas.cli import main
from mas.games.arithmetic import write_problems

TOPOLOGY = """
workflow: {type: loop, agents: [solver, verifier], max_rounds: 2}
agents:
  - {name: solver, role_prompt: "You solve math word problems.", sampling: {temperature: 1.0, max_new_tokens: 12}}
  - {name: verifier, role_prompt: "You check solutions.", sampling: {temperature: 1.0, max_new_tokens: 12}}
"""


def test_single_agent_and_loop_topology_run_to_the_end(tmp_path, capsys, tiny_path):
    data = write_problems(tmp_path / "arith.jsonl", 6, seed=1, max_value=9)
    topology = tmp_path / "loop.yaml"
    topology.write_text(TOPOLOGY)
    out_json, responses = tmp_path / "report.json", tmp_path / "responses.jsonl"
    code = main(["eval", "--policy", tiny_path, "--benchmark", "gsm8k", "--data", str(data), "--samples", "2",
                 "--temperature", "1.0", "--max-new-tokens", "12", "--topology", str(topology), "--threads", "2",
                 "--json", str(out_json), "--responses-out", str(responses)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "single agent" in printed and "loop: solver -> verifier" in printed and "pass@2" in printed
    report = json.loads(out_json.read_text())
    assert [r["system"] for r in report["rows"]] == ["single agent", "loop: solver -> verifier"]
    for row in report["rows"]:
        assert 0.0 <= row["avg_at_k"] <= 1.0
    lines = [json.loads(line) for line in responses.read_text().splitlines()]
    assert len(lines) == 2 * 6 * 2  # two systems x six items x two samples
    assert {line["index"] for line in lines} == set(range(6))
