"""Cost measurement: the FLOP counter sees EMA's functional ops; params differ by exactly the EMA layers' params."""

from __future__ import annotations

import pytest
from conftest import CFG

IMGSZ = 64


@pytest.fixture(scope="module")
def models():
    from ultralytics.nn.tasks import DetectionModel

    import yolo_ema

    yolo_ema.register()
    base = DetectionModel("yolov8n.yaml", nc=10, verbose=False)
    ema = DetectionModel(str(CFG / "yolov8n-ema.yaml"), nc=10, verbose=False)
    return base, ema


def test_params_difference_is_exactly_the_ema_layers(models):
    from yolo_ema.bench import cost

    base, ema = models
    layers = cost.ema_layers(ema)
    assert len(layers) == 3 and not cost.ema_layers(base)
    own = sum(p.numel() for lay in layers for p in lay.parameters())
    assert cost.count_params(ema) - cost.count_params(base) == own


@pytest.mark.slow
def test_flop_counter_sees_ema_ops(models):
    from yolo_ema.bench import cost

    base, ema = models
    fb, fe = cost.model_flops(base, IMGSZ), cost.model_flops(ema, IMGSZ)
    own = cost.ema_own_cost(ema, IMGSZ)
    assert own["layers"] == 3 and own["flops"] > 0
    # The rest of the network is identical, so the difference is the EMA layers' own count (up to the fused
    # Conv/BN bias adds the counter does not see, i.e. exactly).
    assert fe - fb == pytest.approx(own["flops"], rel=1e-6)
    assert fe > fb


@pytest.mark.slow
def test_latency_interleaved_and_measure_keys(models):
    import torch

    from yolo_ema.bench import cost

    base, ema = models
    lat = cost.latency({"b": base, "e": ema}, IMGSZ, runs=3, warmup=1)
    assert set(lat) == {"b", "e"}
    for v in lat.values():
        assert v["runs"] == 3 and v["q1_ms"] <= v["median_ms"] <= v["q3_ms"]
    torch.set_num_threads(2)
    res = cost.measure({"b": base, "e": ema}, IMGSZ, runs=2, warmup=0, progress=lambda m: None)
    assert res["e"]["ema_layers"] == 3 and res["b"]["ema_layers"] == 0
    lat = res["e"]["latency"][str(IMGSZ)]
    # eager, and Ultralytics' ONNX and OpenVINO exports, at the current thread count and at one thread
    assert set(lat) == {f"{r}{s}" for r in ("eager", "onnxruntime", "openvino") for s in ("", " 1 thread")}
    for backend, t in lat.items():
        assert t["threads"] == (1 if backend.endswith("1 thread") else 2) and t["runs"] == 2
        iv = t["vs_first"]
        assert iv["lo"] <= iv["ratio"] <= iv["hi"] and iv["rounds"] == 2
        assert res["b"]["latency"][str(IMGSZ)][backend]["vs_first"]["ratio"] == 1.0
    assert res["e"]["params"] - res["b"]["params"] == res["e"]["ema_params"]
    assert res["e"]["gflops"] > res["b"]["gflops"]
    with pytest.raises(ValueError, match="runs >= 1"):
        cost.latency({"b": base}, IMGSZ, runs=0)


def test_ratio_interval_is_the_median_with_order_statistic_bounds():
    """Against an independent count: the interval's bounds are order statistics holding the median with >= 95%."""
    from math import comb

    from yolo_ema.bench import timing

    num = [1.0 + 0.01 * ((7 * i) % 31) for i in range(31)]
    den = [1.0] * 31
    iv = timing.ratio_interval(num, den)
    r = sorted(num)
    assert iv["ratio"] == r[15] and iv["rounds"] == 31
    k = r.index(iv["lo"]) + 1  # 1-based order statistic
    assert iv["hi"] == r[31 - k]
    coverage = sum(comb(31, j) for j in range(k, 31 - k + 1)) / 2**31
    assert coverage >= 0.95 and sum(comb(31, j) for j in range(k + 1, 31 - k)) / 2**31 < 0.95
    assert timing.ratio_interval([2.0, 2.0], [1.0, 1.0]) == {"ratio": 2.0, "lo": 2.0, "hi": 2.0, "rounds": 2}
    assert timing.wide({"lo": 0.97, "hi": 1.03}) and not timing.wide({"lo": 0.99, "hi": 1.01})
    with pytest.raises(ValueError, match="equally long"):
        timing.ratio_interval([1.0], [])
