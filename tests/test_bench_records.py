"""The benchmark's typed records: the statistics stage on scored runs and the document the report is written from
(the train stage's marker round trip: tests/test_bench_resume.py)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from yolo_ema.bench import bootstrap, pipeline, report, stats
from yolo_ema.bench.records import Picture, Results, ScoredRun, Statistics, TrainedRun


def _scored(label, role, seed, full_ap50, boot_ap50):
    """A scored run with AP50 and AP (AP = AP50 / 2) on the given draws."""
    trained = TrainedRun(f"{label}-seed{seed}", role, label, f"{label}.yaml", seed, f"/w/{label}{seed}.pt", "trained")
    d = {
        "keys": ["AP50", "AP"],
        "full": {"AP50": full_ap50, "AP": full_ap50 / 2},
        "boot": [[b, b / 2] for b in boot_ap50],
    }
    return ScoredRun(trained, {"coco": {"AP50": full_ap50}, "protocol": "coco"}, bootstrap.Scores.from_dict(d))


def test_statistics_stage_pairs_by_seed_and_leaves_the_runs_whole():
    rng = np.random.default_rng(0)
    boot = rng.normal(0.5, 0.02, size=(4, 3, 50))  # [run, seed, draw]
    runs = [_scored("yolov8n", "baseline", s, 0.5 + s / 100, boot[0, s]) for s in range(3)]
    runs += [_scored("yolov8n-ema", "arm", s, 0.52 + s / 100, boot[1, s] + 0.02) for s in range(3)]
    runs += [_scored("yolov8n-control", "arm", 1000 + s, 0.5 + s / 100, boot[2, s]) for s in range(3)]
    before = [dataclasses.asdict(r.trained) for r in runs]
    st = pipeline.paired_stats(runs, resamples=50)
    assert isinstance(st, Statistics) and list(st.arms) == ["yolov8n-ema", "yolov8n-control"]
    ema = st.arms["yolov8n-ema"]
    assert ema.seeds == [0, 1, 2] and ema.pooled["AP50"]["diff"] == pytest.approx(0.02)
    # the same numbers as the statistics module on the per-seed differences and the shared draws' differences
    want = stats.seed_image_interval(np.full(3, 0.02), np.stack([boot[1, s] + 0.02 - boot[0, s] for s in range(3)]))
    assert ema.pooled["AP50"] == pytest.approx(want)
    assert st.arms["yolov8n-control"].seeds == [0, 1, 2]  # control seed 1000 + s paired with baseline seed s
    assert [dataclasses.asdict(r.trained) for r in runs] == before and all(r.scores is not None for r in runs)


def test_results_document_is_what_the_report_reads(tmp_path):
    rng = np.random.default_rng(1)
    runs = [_scored("yolov8n", "baseline", s, 0.5, rng.normal(0.5, 0.02, 40)) for s in range(2)]
    runs += [_scored("yolov8n-ema", "arm", s, 0.5, rng.normal(0.5, 0.02, 40)) for s in range(2)]
    desc = pipeline.Description("synthetic", "/d", "val", "coco", "yolov8n", ["yolov8n-ema"],
                                {"yolov8n": "yolov8n.yaml", "yolov8n-ema": "yolov8n-ema.yaml"}, [0, 1], "5 epochs",
                                6, 40, "a machine", 1.0, "0.0 min", "yolo-ema benchmark")  # fmt: skip
    res = Results(desc, runs, pipeline.paired_stats(runs, 40), {}, Picture("attention.png", "yolov8n-ema", ["a.jpg"]),
                  ["a caveat."])  # fmt: skip
    doc = res.document()
    assert [r["run"] for r in doc["runs"]] == [r.trained.run for r in runs]
    assert all("scores" not in r and r["eval"]["coco"]["AP50"] == 0.5 for r in doc["runs"])
    paths = report.write(doc, tmp_path)
    written = json.loads(paths["json"].read_text())
    assert written["bootstrap"]["arms"]["yolov8n-ema"]["seeds"] == [0, 1]
    assert written["pictures"] == {"attention": "attention.png", "arm": "yolov8n-ema", "images": ["a.jpg"]}
    first = paths["md"].read_text().splitlines()[2]
    assert first.startswith("- **yolov8n-ema** vs yolov8n (2 seeds): **no detectable difference** in COCO AP50, +0.00")
