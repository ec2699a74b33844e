"""Resume: a finished run (weights + done.json) is never retrained; a half-finished one is resumed or restarted."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from yolo_ema.bench import runner
from yolo_ema.bench.records import TrainedRun
from yolo_ema.bench.runner import BenchmarkError, Run, Settings

SETTINGS = Settings(epochs=1, imgsz=64, batch=2)


class FakeTrain:
    """Stands in for Ultralytics training: writes weights, counts calls and what it was asked to resume from."""

    def __init__(self):
        self.calls = []

    def __call__(self, run, data_yaml, settings, folder, resume_from):
        self.calls.append((run.name, resume_from))
        w = Path(folder) / "weights"
        w.mkdir(parents=True, exist_ok=True)
        (w / "best.pt").write_bytes(b"weights")
        (w / "last.pt").write_bytes(b"weights")
        return {"weights": str(w / "best.pt"), "val": {"mAP50-95": 0.25, "mAP50": 0.5}}


def _runs():
    return [Run("baseline", "yolov8n", "yolov8n.yaml", 0), Run("ema", "yolov8n-ema", "cfg/yolov8n-ema.yaml", 0)]


def test_finished_run_is_not_retrained(tmp_path):
    fake = FakeTrain()
    base, ema = _runs()
    rec = runner.train_run(base, tmp_path / "data.yaml", SETTINGS, tmp_path, train_fn=fake, log=lambda m: None)
    assert rec.status == "trained" and len(fake.calls) == 1
    marker = json.loads((tmp_path / "runs" / "yolov8n-seed0" / runner.DONE).read_text())
    assert marker["val"] == {"mAP50-95": 0.25, "mAP50": 0.5} and marker["settings"]["epochs"] == 1
    # "interrupted between models": the rerun skips the finished baseline and trains only the EMA model
    for r in (base, ema):
        runner.train_run(r, tmp_path / "data.yaml", SETTINGS, tmp_path, train_fn=fake, log=lambda m: None)
    assert fake.calls == [("yolov8n-seed0", None), ("yolov8n-ema-seed0", None)]
    again = runner.train_run(ema, tmp_path / "data.yaml", SETTINGS, tmp_path, train_fn=fake, log=lambda m: None)
    assert again.status == "skipped" and len(fake.calls) == 2


def test_trained_run_is_its_marker_read_back(tmp_path):
    fake = FakeTrain()
    run = Run("arm", "yolov8n-ema", "cfg/yolov8n-ema.yaml", 3)
    trained = runner.train_run(run, tmp_path / "d.yaml", SETTINGS, tmp_path, train_fn=fake, log=lambda m: None)
    assert isinstance(trained, TrainedRun) and trained.status == "trained" and trained.run == "yolov8n-ema-seed3"
    marker = json.loads((tmp_path / "runs" / run.name / runner.DONE).read_text())
    assert marker == json.loads(json.dumps(trained.marker())) and "status" not in marker
    assert marker["settings"] == SETTINGS.as_dict() and marker["val"] == {"mAP50-95": 0.25, "mAP50": 0.5}
    again = runner.train_run(run, tmp_path / "d.yaml", SETTINGS, tmp_path, train_fn=fake, log=lambda m: None)
    assert again == dataclasses.replace(trained, status="skipped") and len(fake.calls) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):  # a later stage cannot change what training gave
        again.weights = "other.pt"


def test_half_finished_run_is_resumed(tmp_path, monkeypatch):
    fake = FakeTrain()
    base = _runs()[0]
    last = tmp_path / "runs" / base.name / "weights" / "last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"epoch 3 of 5")
    monkeypatch.setattr(runner, "resumable", lambda p: Path(p) == last)
    rec = runner.train_run(base, tmp_path / "d.yaml", SETTINGS, tmp_path, train_fn=fake, log=lambda m: None)
    assert rec.status == "resumed" and fake.calls == [(base.name, last)]


def test_unresumable_leftovers_restart_from_scratch(tmp_path):
    fake = FakeTrain()
    base = _runs()[0]
    folder = tmp_path / "runs" / base.name
    (folder / "weights").mkdir(parents=True)
    (folder / "weights" / "last.pt").write_bytes(b"cut short by a kill")  # not a loadable checkpoint
    (folder / "stale.txt").write_text("x")
    assert not runner.resumable(folder / "weights" / "last.pt")
    rec = runner.train_run(base, tmp_path / "d.yaml", SETTINGS, tmp_path, train_fn=fake, log=lambda m: None)
    assert rec.status == "trained" and fake.calls == [(base.name, None)]
    assert not (folder / "stale.txt").exists()


def test_other_settings_are_an_error_naming_the_run(tmp_path):
    fake = FakeTrain()
    base = _runs()[0]
    runner.train_run(base, tmp_path / "d.yaml", SETTINGS, tmp_path, train_fn=fake, log=lambda m: None)
    other = Settings(epochs=3, imgsz=64, batch=2)
    with pytest.raises(BenchmarkError, match=r"yolov8n-seed0 .*epochs: 1 -> 3"):
        runner.train_run(base, tmp_path / "d.yaml", other, tmp_path, train_fn=fake, log=lambda m: None)
    assert len(fake.calls) == 1


def test_marker_written_last_and_atomically(tmp_path, monkeypatch):
    """Killed while writing done.json (after training): no marker, no temp file; the re-run validates, not retrains."""
    import os

    fake = FakeTrain()
    base = _runs()[0]
    folder = tmp_path / "runs" / base.name
    real_replace = os.replace

    def killed_on_marker(src, dst):
        if str(dst).endswith(runner.DONE):
            raise KeyboardInterrupt  # the kill lands inside the marker's write
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_on_marker)
    with pytest.raises(KeyboardInterrupt):
        runner.train_run(base, tmp_path / "d.yaml", SETTINGS, tmp_path, train_fn=fake, log=lambda m: None)
    monkeypatch.setattr(os, "replace", real_replace)
    assert (folder / "weights" / "best.pt").is_file()  # training had finished ...
    assert sorted(p.name for p in folder.iterdir()) == ["weights"]  # ... but no marker and no temp file
    validated = []
    rec = runner.train_run(base, tmp_path / "d.yaml", SETTINGS, tmp_path, train_fn=fake,
                           val_fn=lambda w, d, s: validated.append(w) or {"mAP50-95": 0.2, "mAP50": 0.4},
                           log=lambda m: None)  # fmt: skip
    assert rec.status == "recovered" and len(fake.calls) == 1 and validated == [folder / "weights" / "best.pt"]
    assert json.loads((folder / runner.DONE).read_text())["val"] == {"mAP50-95": 0.2, "mAP50": 0.4}
