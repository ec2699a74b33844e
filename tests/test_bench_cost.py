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
    from yolo_ema.bench import cost

    base, ema = models
    lat = cost.latency({"b": base, "e": ema}, IMGSZ, runs=3, warmup=1)
    assert set(lat) == {"b", "e"}
    for v in lat.values():
        assert v["runs"] == 3 and v["q1_ms"] <= v["median_ms"] <= v["q3_ms"]
    res = cost.measure({"b": base, "e": ema}, IMGSZ, runs=2, warmup=0, progress=lambda m: None)
    assert res["e"]["ema_layers"] == 3 and res["b"]["ema_layers"] == 0
    assert res["e"]["params"] - res["b"]["params"] == res["e"]["ema_params"]
    assert res["e"]["gflops"] > res["b"]["gflops"]
    with pytest.raises(ValueError, match="runs >= 1"):
        cost.latency({"b": base}, IMGSZ, runs=0)
