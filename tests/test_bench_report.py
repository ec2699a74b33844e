"""Benchmark report from hand-made per-seed numbers: statistics, verdicts, files, atomic writes."""

from __future__ import annotations

import json
import os
import statistics

import pytest

from yolo_ema.bench import atomic, report, stats


def _run(role, label, seed, ap, bucket_ap, m=None):
    return {
        "role": role,
        "label": label,
        "seed": seed,
        "weights": f"/w/{label}-{seed}.pt",
        "val": {"mAP50-95": m if m is not None else ap, "mAP50": 2 * ap},
        "eval": {
            "coco": {"AP": ap, "AP50": 2 * ap, "AP75": ap / 2},
            "buckets": {b: {"AP": bucket_ap, "AP50": None, "AR": None, "n_gt": 1} for b in report.BUCKETS},
            "visdrone": {"AP": ap, "AR500": ap},
        },
    }


def _results():
    # COCO AP: baseline 0.10 0.12 0.14, EMA 0.20 0.21 0.22 -> ranges do not overlap (outside)
    # bucket AP: baseline 0.30 0.40 0.50, EMA 0.35 0.45 0.55 -> overlap (inside)
    runs = [_run("baseline", "yolov8n", s, ap, b) for s, ap, b in zip((0, 1, 2), (0.10, 0.12, 0.14), (0.3, 0.4, 0.5))]
    runs += [
        _run("ema", "yolov8n-ema", s, ap, b) for s, ap, b in zip((0, 1, 2), (0.20, 0.21, 0.22), (0.35, 0.45, 0.55))
    ]
    cost = {
        "yolov8n": {
            "params": 1000,
            "gflops": 2.0,
            "gflops_thop": 2.0,
            "imgsz": 64,
            "latency": {"median_ms": 10.0, "q1_ms": 9.0, "q3_ms": 11.0, "runs": 5, "device": "cpu", "threads": 2},
        },
        "yolov8n-ema": {
            "params": 1100,
            "gflops": 2.5,
            "gflops_thop": 2.1,
            "imgsz": 64,
            "ema_layers": 3,
            "ema_params": 100,
            "ema_gflops": 0.5,
            "latency": {"median_ms": 10.5, "q1_ms": 9.5, "q3_ms": 11.5, "runs": 5, "device": "cpu", "threads": 2},
        },
    }
    bench = {"baseline": "yolov8n", "ema": "yolov8n-ema", "seeds": [0, 1, 2], "data": "synthetic", "split": "val"}
    return {"benchmark": bench, "runs": runs, "cost": cost, "notes": ["a caveat."]}


def test_summary_is_exact():
    s = stats.summarize([0.1, 0.12, 0.14, None])
    assert s["n"] == 3
    assert s["mean"] == pytest.approx(0.12, abs=1e-15)
    assert s["std"] == pytest.approx(statistics.stdev([0.1, 0.12, 0.14]), abs=1e-15)
    assert s["std"] == pytest.approx(0.02, abs=1e-12)
    assert (s["min"], s["max"]) == (0.1, 0.14)
    assert stats.summarize([0.5])["std"] == 0.0
    assert stats.summarize([None])["mean"] is None


def test_verdicts_inside_and_outside():
    m = report.summarize_metrics(_results())
    assert m["AP"]["verdict"]["outside"] is True
    assert m["AP"]["verdict"]["text"] == "EMA better by 9.0 points, outside the seed spread"
    assert m["AP"]["verdict"]["diff"] == pytest.approx(0.09)
    assert m["AP_tiny"]["verdict"]["outside"] is False
    assert m["AP_tiny"]["verdict"]["text"].startswith("difference inside the seed spread (not significant)")
    assert m["AP"]["ema"]["values"] == [0.20, 0.21, 0.22]
    assert m["AP"]["baseline"]["seeds"] == [0, 1, 2]
    worse = stats.verdict(stats.summarize([0.5, 0.6]), stats.summarize([0.1, 0.2]), True, 100, " points")
    assert worse["text"] == "EMA worse by 40.0 points, outside the seed spread"
    one = stats.verdict(stats.summarize([0.5]), stats.summarize([0.6]))
    assert "one seed only" in one["text"] and one["outside"] is None


def test_files_written_with_expected_content(tmp_path):
    paths = report.write(_results(), tmp_path)
    rep = json.loads(paths["json"].read_text())
    assert set(rep["metrics"]) >= {"mAP50-95", "mAP50", "AP", "AP50", "AP75", "AP_very_tiny", "VisDrone_AR500"}
    assert [r["eval"]["coco"]["AP"] for r in rep["runs"]] == [0.10, 0.12, 0.14, 0.20, 0.21, 0.22]
    md = paths["md"].read_text()
    assert "| COCO AP | 12.00 ± 2.00 | 21.00 ± 1.00 | +9.00 | EMA better by 9.0 points, outside the seed spread |" in md
    assert "inside the seed spread (not significant)" in md
    assert "EMA adds +100 parameters (+10.00%)" in md
    assert "inside the timing noise" in md
    assert "a caveat." in md
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(atomic.TMP_PREFIX)]


def test_no_visdrone_rows_without_visdrone_protocol():
    res = _results()
    for r in res["runs"]:
        del r["eval"]["visdrone"]
    assert "VisDrone_AP" not in report.summarize_metrics(res)


def test_injected_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    target.write_text('{"old": true}\n')

    def boom(src, dst):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="injected"):
        report.write(_results(), tmp_path)
    assert target.read_text() == '{"old": true}\n'  # the old complete file, untouched
    assert sorted(os.listdir(tmp_path)) == ["report.json"]  # no temp file, no partial report.md/plot.png


def test_failure_while_writing_removes_temp(tmp_path):
    def writer(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("killed mid-write (injected)")

    with pytest.raises(RuntimeError):
        atomic.write_with(tmp_path / "plot.png", writer)
    assert os.listdir(tmp_path) == []
