"""Benchmark report from hand-made numbers: the answer first, per-seed summaries, all arms in one report and plot."""

from __future__ import annotations

import json
import os
import statistics

import pytest

from yolo_ema.bench import report, stats


def _run(label, role, seed, ap, bucket_ap):
    return {
        "role": role,
        "label": label,
        "run": f"{label}-seed{seed}",
        "seed": seed,
        "status": "trained",
        "weights": f"/w/{label}-{seed}.pt",
        "val": {"mAP50-95": ap, "mAP50": 2 * ap},
        "eval": {
            "coco": {"AP": ap, "AP50": 2 * ap, "AP75": ap / 2},
            "buckets": {b: {"AP": bucket_ap, "AP50": None, "AR": None, "n_gt": 1} for b in report.BUCKETS},
        },
    }


def _iv(diff, lo, hi, verdict, mde=0.092, need=40, covers=stats.SEEDS_AND_IMAGES):
    return {"diff": diff, "lo": lo, "hi": hi, "verdict": verdict, "resamples": 1000, "mde": mde,
            "seeds_for_1_point": need, "covers": covers}  # fmt: skip


def _lat(ms):
    return {"median_ms": ms, "q1_ms": ms - 1, "q3_ms": ms + 1, "runs": 5, "device": "cpu", "threads": 2}


def _results():
    aps = {"yolov8n": (0.10, 0.12, 0.14), "yolov8n-ema": (0.20, 0.21, 0.22), "yolov8n-ema-paper": (0.11, 0.12, 0.13)}
    runs = [_run(lab, "baseline" if lab == "yolov8n" else "arm", s, ap, 0.3 + s / 10)
            for lab, v in aps.items() for s, ap in enumerate(v)]  # fmt: skip
    better = {k: _iv(0.09, 0.05, 0.13, "better") for k in report.BOOTSTRAPPED}
    same = {k: _iv(0.0, -0.02, 0.02, "no detectable difference") for k in report.BOOTSTRAPPED}
    boot = {
        "method": "paired bootstrap over validation images (1000 resamples, ...)",
        "resamples": 1000,
        "arms": {
            "yolov8n-ema": {"seeds": [0, 1, 2], "per_seed": [better] * 3, "pooled": better},
            "yolov8n-ema-paper": {"seeds": [0, 1, 2], "per_seed": [same] * 3, "pooled": same},
        },
    }
    cost = {
        lab: {"params": 1000 + 100 * i, "gflops": 2.0 + i, "gflops_thop": 2.0 + i, "imgsz": 256, "ema_layers": i,
              "ema_params": 100 * i, "ema_gflops": 0.1 * i,
              "latency": {"256": {"eager": _lat(10 + i), "onnxruntime": _lat(5 + i)},
                          "640": {"eager": _lat(50 + i), "onnxruntime": _lat(30 + i)}}}
        for i, lab in enumerate(aps)
    }  # fmt: skip
    bench = {"baseline": "yolov8n", "arms": ["yolov8n-ema", "yolov8n-ema-paper"], "seeds": [0, 1, 2],
             "data": "synthetic", "split": "val", "configs": {k: f"/cfg/{k}.yaml" for k in aps}}  # fmt: skip
    return {"benchmark": bench, "runs": runs, "bootstrap": boot, "cost": cost, "notes": ["a caveat."],
            "pictures": {"attention": "attention.png", "arm": "yolov8n-ema", "images": ["a.jpg"]}}  # fmt: skip


def test_summary_is_exact():
    s = stats.summarize([0.1, 0.12, 0.14, None])
    assert s["n"] == 3
    assert s["mean"] == pytest.approx(0.12, abs=1e-15)
    assert s["std"] == pytest.approx(statistics.stdev([0.1, 0.12, 0.14]), abs=1e-15)
    assert (s["min"], s["max"]) == (0.1, 0.14)
    assert stats.summarize([0.5])["std"] == 0.0
    assert stats.summarize([None])["mean"] is None


def test_per_model_summaries():
    m = report.summarize_metrics(_results())
    assert list(m["AP"]["models"]) == ["yolov8n", "yolov8n-ema", "yolov8n-ema-paper"]
    assert m["AP"]["models"]["yolov8n-ema"]["values"] == [0.20, 0.21, 0.22]
    assert m["AP"]["models"]["yolov8n"]["mean"] == pytest.approx(0.12)
    assert "VisDrone_AP" not in m  # no run has it


def test_report_opens_with_the_answer_and_holds_every_arm(tmp_path):
    paths = report.write(_results(), tmp_path)
    md = paths["md"].read_text()
    lines = md.splitlines()
    assert lines[0] == "# yolo-ema benchmark: yolov8n vs yolov8n-ema, yolov8n-ema-paper"
    assert lines[2] == (
        "- **yolov8n-ema** vs yolov8n (3 seeds): **better** in COCO AP50, +9.00 (95% CI +5.00 to +13.00); this run "
        "can detect differences above 9.2 COCO AP50 points; about 40 seeds would be needed for 1 point; COCO AP "
        "better, +9.00 (95% CI +5.00 to +13.00)."
    )
    assert lines[3].startswith("- **yolov8n-ema-paper** vs yolov8n (3 seeds): **no detectable difference** in COCO")
    assert md.index("paired bootstrap") < md.index("](plot.png)") < md.index("## Differences") < md.index("## Accuracy")
    assert "does not say the models are equal" in md and "covers training seeds and validation images" in md
    assert "| yolov8n-ema | 1 | +9.00 (95% CI +5.00 to +13.00) |" in md  # per seed: interval, no verdict word
    assert "| COCO AP | 12.00 ± 2.00 (10.00–14.00) | 21.00 ± 1.00 (20.00–22.00) | 12.00 ± 1.00 (11.00–13.00) |" in md
    assert "| Latency 640×640 onnxruntime, median ms (IQR) | 30.00 (29.00–31.00) | 31.00" in md
    assert "](attention.png)" in md and "a caveat." in md
    rep = json.loads(paths["json"].read_text())
    assert rep["bootstrap"]["arms"]["yolov8n-ema"]["pooled"]["AP50"]["verdict"] == "better"
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path)) == ["plot.png", "report.json", "report.md"]  # no temp files left


def test_injected_failure_leaves_the_old_report(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    target.write_text('{"old": true}\n')

    def boom(src, dst):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="injected"):
        report.write(_results(), tmp_path)
    assert target.read_text() == '{"old": true}\n'
    assert sorted(os.listdir(tmp_path)) == ["report.json"]


def test_one_seed_speaks_of_these_weights_and_the_control_reuses_the_baseline_cost(tmp_path):
    res = _results()
    one = {k: _iv(0.09, 0.05, 0.13, "better", need=None, covers=stats.IMAGES_ONLY) for k in report.BOOTSTRAPPED}
    res["bootstrap"]["arms"] = {"yolov8n-ema": {"seeds": [0], "per_seed": [one], "pooled": one}}
    md = report.markdown(report.build(res))
    line = md.splitlines()[2]
    assert line.startswith(
        "- **these yolov8n-ema weights** vs these yolov8n weights (one training each: image sampling"
    )
    assert "training noise not measured" in line and "between these weights" in line and "seeds" not in line
    res = _results()
    res["runs"] += [{**r, "label": "yolov8n-control", "seed": 1000 + r["seed"]} for r in res["runs"][:3]]
    md = report.markdown(report.build(res))  # no cost entry for the control: the cost table still shows the others
    assert "| Parameters | 1,000 | 1,100 | 1,200 |" in md
