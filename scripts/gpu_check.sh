#!/usr/bin/env bash
# One-command check of yolo-ema on a lent GPU (about 10 minutes of device time; this runs in under 8).
#
#   scripts/gpu_check.sh OUT_DIR                 # on a machine with one CUDA GPU
#   scripts/gpu_check.sh OUT_DIR --cpu-dry-run   # the same steps at tiny sizes on the CPU (what CI runs)
#
# Installs nothing: it needs the project installed (README, command 1) and uses what is importable. Steps, each
# under its own time limit, each writing OUT_DIR/<step>.log (and .json where it measures), then OUT_DIR/summary.json:
#   parity    EMA against the paper formulation (PaperEMA) on the device in fp32, fp16 and bf16, and under autocast:
#             forward and backward (input and parameter gradients), both against the fp64 formulation
#   train     a short Ultralytics training of yolov8n-ema with AMP (Ultralytics' AMP check line and the trainer's
#             AMP state recorded), losses finite
#   speed     `yolo-ema speed` whole-model table on the device: batch 1 and 32 at 640, eager, and onnxruntime CUDA
#             when onnxruntime-gpu is installed (skipped otherwise; the dry run times eager only)
#   benchmark a small `yolo-ema benchmark` on the device (synthetic data, one arm, two seeds, few epochs)
#   engine    `yolo export format=engine` and its boxes against PyTorch's, when TensorRT is importable (else skipped)
# A step that fails does not stop the others; the exit status is non-zero if any step failed.
set -u

if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: $0 OUT_DIR [--cpu-dry-run]" >&2
    exit 2
fi
OUT=$1
DRY=0
if [ "${2:-}" = "--cpu-dry-run" ]; then
    DRY=1
elif [ $# -gt 1 ]; then
    echo "$0: unknown option ${2} (only --cpu-dry-run)" >&2
    exit 2
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python}
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false YOLO_VERBOSE=False
WORK="$OUT/work"
mkdir -p "$WORK"

if [ $DRY = 1 ]; then
    DEV=cpu; IMGSZ=64; PARITY_SHAPE=2,64,12,10; TRAIN_IMAGES=8; TRAIN_BATCH=4; BATCHES=1; SCALES=n; REPEATS=2
    BENCH=(--device cpu --imgsz 64 --batch 4 --epochs 1 --pretrain-epochs 0 --seeds 0 --synthetic-images 12
           --synthetic-size 64 --latency-sizes 64 --latency-runs 2 --latency-warmup 0 --resamples 20)
    LIMIT_PARITY=300; LIMIT_TRAIN=300; LIMIT_SPEED=400; LIMIT_BENCH=600; LIMIT_ENGINE=60
else
    DEV=0; IMGSZ=640; PARITY_SHAPE=4,256,40,40; TRAIN_IMAGES=64; TRAIN_BATCH=16; BATCHES=1,32; SCALES=n,s; REPEATS=30
    BENCH=(--device 0 --imgsz 320 --batch 32 --epochs 3 --pretrain-epochs 3 --seeds 0 1 --synthetic-images 256
           --synthetic-size 320 --latency-sizes 320 --latency-runs 20 --workers 4)
    LIMIT_PARITY=45; LIMIT_TRAIN=120; LIMIT_SPEED=90; LIMIT_BENCH=150; LIMIT_ENGINE=60
fi

: > "$OUT/steps.jsonl"
FAILED=0
step() {  # step NAME LIMIT_S COMMAND...: run under a time limit, log, record status
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s)
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    printf '{"step": "%s", "rc": %d, "seconds": %d, "limit_s": %d}\n' "$name" "$rc" "$(( $(date +%s) - start ))" \
        "$limit" >> "$OUT/steps.jsonl"
    [ $rc = 0 ] || FAILED=1
    echo "$name: rc $rc ($(( $(date +%s) - start )) s) -> $OUT/$name.log"
}

step parity "$LIMIT_PARITY" "$PY" - "$DEV" "$OUT/parity.json" "$PARITY_SHAPE" <<'EOF'
"""EMA vs the paper formulation on the device: fp32/fp16/bf16 and autocast, forward and backward, vs fp64 truth."""
import json, sys
import torch
from yolo_ema.data import fsio
from yolo_ema.nn.ema import EMA
from yolo_ema.nn.ema_paper import PaperEMA

dev = torch.device("cpu" if sys.argv[1] == "cpu" else f"cuda:{sys.argv[1]}")
torch.manual_seed(0)
b, c, h, w = (int(v) for v in sys.argv[3].split(","))
truth = PaperEMA(c, 8).double()
with torch.no_grad():
    for p in truth.parameters():
        p.normal_(0.0, 0.3)
x64 = torch.randn(b, c, h, w, dtype=torch.float64) * 2 + 0.5
g64 = torch.randn_like(x64)

def run(cls, dtype, autocast):
    m = cls(c, 8).to(dev)
    m.load_state_dict(truth.state_dict())
    m = m.to(torch.float32 if autocast else dtype)
    x = x64.to(dev, torch.float32 if autocast else dtype).clone().requires_grad_(True)
    with torch.autocast(dev.type, dtype=dtype, enabled=autocast):
        y = m(x)
    y.backward(g64.to(dev, y.dtype))
    grads = [x.grad] + [p.grad for p in m.parameters()]
    return y.double().cpu(), [g.double().cpu() for g in grads]

y_t, g_t = run(PaperEMA, torch.float64, False) if dev.type == "cpu" else (None, None)
if y_t is None:  # fp64 truth computed on the CPU
    xt = x64.clone().requires_grad_(True)
    y_t = truth(xt); y_t.backward(g64)
    g_t = [xt.grad] + [p.grad for p in truth.parameters()]
    y_t = y_t.detach()
rows, ok = [], True
for dtype in (torch.float32, torch.float16, torch.bfloat16):
    for autocast in (False, True):
        if autocast and dtype == torch.float32:
            continue
        err = {}
        for name, cls in (("ours", EMA), ("paper", PaperEMA)):
            y, g = run(cls, dtype, autocast)
            rel = lambda a, b: ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()
            err[name] = {"forward": rel(y, y_t), "grad": max(rel(a, b) for a, b in zip(g, g_t))}
        finite = all(v == v and v != float("inf") for e in err.values() for v in e.values())
        # ours within 2x the paper formulation's own error in the same precision (plus fp32 round-off)
        good = finite and all(err["ours"][k] <= 2 * err["paper"][k] + 1e-5 for k in ("forward", "grad"))
        ok &= good
        rows.append({"dtype": str(dtype), "autocast": autocast, "ok": good, **err})
        print(rows[-1], flush=True)
fsio.write_json(sys.argv[2], {"device": str(dev), "rows": rows, "ok": ok}, indent=2)
sys.exit(0 if ok else 1)
EOF

step train "$LIMIT_TRAIN" "$PY" - "$DEV" "$WORK" "$IMGSZ" "$TRAIN_IMAGES" "$TRAIN_BATCH" "$OUT/train.json" <<'EOF'
"""Short yolov8n-ema training with amp=True on generated images; Ultralytics' AMP check line and AMP state recorded."""
import csv, io, logging, math, sys
from pathlib import Path
import cv2, numpy as np
import yolo_ema
from yolo_ema.data import fsio

dev, work, imgsz, n, batch, out = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
rng = np.random.default_rng(0)
root = work / "data"
for split, k in (("train", n), ("val", max(2, n // 4))):
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for i in range(k):
        img = rng.integers(0, 60, (imgsz, imgsz, 3), dtype=np.uint8)
        lines = []
        for _ in range(4):
            c, (w, h) = int(rng.integers(0, 2)), rng.integers(imgsz // 10, imgsz // 4, 2)
            x0, y0 = rng.integers(0, imgsz - w), rng.integers(0, imgsz - h)
            img[y0:y0 + h, x0:x0 + w] = (200, 60, 60) if c == 0 else (60, 200, 60)
            lines.append(f"{c} {(x0 + w / 2) / imgsz:.6f} {(y0 + h / 2) / imgsz:.6f} {w / imgsz:.6f} {h / imgsz:.6f}")
        cv2.imwrite(str(root / "images" / split / f"{i}.png"), img)
        (root / "labels" / split / f"{i}.txt").write_text("\n".join(lines) + "\n")
(root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: {{0: a, 1: b}}\n")

log = io.StringIO()
handler = logging.StreamHandler(log)
logging.getLogger("ultralytics").addHandler(handler)
yolo_ema.register()
from ultralytics import YOLO
model = YOLO("yolov8n-ema.yaml")
model.train(data=str(root / "data.yaml"), epochs=2, imgsz=imgsz, batch=batch, device=dev, amp=True, workers=2,
            project=str(work), name="train", exist_ok=True, plots=False, seed=0, deterministic=False)
amp_lines = [l for l in log.getvalue().splitlines() if "AMP" in l]
rows = list(csv.DictReader(open(work / "train" / "results.csv")))
losses = [float(v) for r in rows for k, v in r.items() if "loss" in k.strip()]
res = {"device": dev, "amp_check": amp_lines, "trainer_amp": bool(model.trainer.amp), "epochs": len(rows),
       "losses_finite": all(math.isfinite(v) for v in losses), "last": {k.strip(): v for k, v in rows[-1].items()}}
print(res)
fsio.write_json(out, res, indent=2)
amp_ok = dev == "cpu" or (res["trainer_amp"] and not any("failed" in l for l in amp_lines))
sys.exit(0 if res["losses_finite"] and amp_ok else 1)
EOF

step speed "$LIMIT_SPEED" "$PY" -m yolo_ema.bench.speed --no-layer --device "$DEV" --batch "$BATCHES" \
    --sizes "$IMGSZ" --scales "$SCALES" --threads 2 --model-repeats "$REPEATS" --json "$OUT/speed.json" \
    --no-openvino $([ $DRY = 1 ] && echo --no-onnx)

step benchmark "$LIMIT_BENCH" yolo-ema benchmark --data synthetic --arms ema --out "$WORK/benchmark" "${BENCH[@]}"
cp "$WORK/benchmark/report.md" "$OUT/benchmark_report.md" 2>/dev/null

if "$PY" -c "import tensorrt" 2>/dev/null && [ $DRY = 0 ]; then
    step engine "$LIMIT_ENGINE" "$PY" - "$DEV" "$WORK" "$OUT/engine.json" <<'EOF'
"""yolo export format=engine of a yolov8n-ema checkpoint; its boxes against PyTorch's on generated images."""
import sys
from pathlib import Path
import numpy as np, torch
import yolo_ema
from yolo_ema.data import fsio
from yolo_ema.nn.ema import EMA

yolo_ema.register()
from ultralytics import YOLO
dev, work, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
weights = work / "train" / "weights" / "last.pt"
model = YOLO(str(weights))
engine = model.export(format="engine", imgsz=640, device=dev)
images = sorted((work / "data" / "images" / "val").glob("*.png"))[:4]
a = [r.boxes.data.cpu().numpy() for r in model.predict(images, imgsz=640, device=dev, conf=0.25, verbose=False)]
b = [r.boxes.data.cpu().numpy() for r in YOLO(engine).predict(images, imgsz=640, device=dev, conf=0.25, verbose=False)]
same = all(x.shape == y.shape and (x.size == 0 or np.abs(x[:, :4] - y[:, :4]).max() <= 1.0) for x, y in zip(a, b))
res = {"engine": str(engine), "images": len(images), "boxes_pt": [len(x) for x in a], "boxes_engine": [len(y) for y in b],
       "same_boxes_1px": same}
print(res)
fsio.write_json(out, res, indent=2)
sys.exit(0 if same else 1)
EOF
else
    printf '{"step": "engine", "rc": null, "skipped": "%s"}\n' \
        "$([ $DRY = 1 ] && echo "cpu dry run" || echo "tensorrt not importable")" >> "$OUT/steps.jsonl"
    echo "engine: skipped"
fi

"$PY" - "$OUT" "$DRY" <<'EOF'
import json, sys
from pathlib import Path
import torch
from yolo_ema.data import fsio
out = Path(sys.argv[1])
steps = [json.loads(l) for l in (out / "steps.jsonl").read_text().splitlines() if l.strip()]
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
fsio.write_json(out / "summary.json", {"cpu_dry_run": sys.argv[2] == "1", "gpu": gpu, "torch": torch.__version__,
                                       "steps": steps}, indent=2)
EOF
exit $FAILED
