"""Checkpoints are committed atomically: an interrupted save never looks committed."""
from __future__ import annotations

import pytest

from mas.training import checkpoint


def test_commit_marks_last_and_links_final(tmp_path):
    staged = checkpoint.staging_dir(tmp_path, 3)
    (staged / "payload").write_text("x")
    assert checkpoint.committed_steps(tmp_path) == []  # staged is not committed
    path = checkpoint.commit(tmp_path, 3, staged)
    assert (path / "COMMITTED").read_text().strip() == "3"
    assert (tmp_path / "final").resolve() == path.resolve()
    assert checkpoint.latest_committed(tmp_path) == path


def test_interrupted_save_is_ignored_and_replaced(tmp_path):
    checkpoint.commit(tmp_path, 2, checkpoint.staging_dir(tmp_path, 2))
    # a kill after the rename but before the marker: step-4 exists without COMMITTED
    (tmp_path / "step-4").mkdir()
    (tmp_path / "step-4" / "half-written").write_text("?")
    # and a kill while staging step-6
    checkpoint.staging_dir(tmp_path, 6)
    assert checkpoint.committed_steps(tmp_path) == [2]
    assert checkpoint.latest_committed(tmp_path).name == "step-2"
    redo = checkpoint.staging_dir(tmp_path, 4)
    (redo / "payload").write_text("y")
    checkpoint.commit(tmp_path, 4, redo)
    assert not (tmp_path / "step-4" / "half-written").exists()
    assert checkpoint.committed_steps(tmp_path) == [2, 4]


def test_prune_keeps_newest(tmp_path):
    for step in (1, 2, 3):
        checkpoint.commit(tmp_path, step, checkpoint.staging_dir(tmp_path, step))
    checkpoint.prune(tmp_path, keep_last=2)
    assert checkpoint.committed_steps(tmp_path) == [2, 3]
    assert (tmp_path / "final").resolve().name == "step-3"


def test_marker_files_are_replaced_whole(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    checkpoint.write_text_atomic(target, '{"a": 1}')
    assert target.read_text() == '{"a": 1}' and [p.name for p in tmp_path.iterdir()] == ["summary.json"]

    def killed(*_):
        raise KeyboardInterrupt  # a kill between writing the new text and putting it in place

    monkeypatch.setattr("os.replace", killed)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.write_text_atomic(target, '{"a": 2, "b": [1, 2, 3]}')
    assert target.read_text() == '{"a": 1}'  # the old file, never a truncated new one
