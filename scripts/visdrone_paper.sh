#!/usr/bin/env bash
# VisDrone2019-DET recipe: baseline vs EMA (Ouyang et al., ICASSP 2023, arXiv:2305.13563) for YOLOv8s and the
# YOLOv8s-P2 variant (an extra stride-4 head for tiny objects). Steps, per model:
#   1. prepare   yolo-ema prepare visdrone          (idempotent; ignored regions kept for the VisDrone protocol)
#   2. train     yolo train baseline and EMA, seed 0 (same settings, deterministic)
#   3. evaluate  yolo-ema eval                      (COCO AP, AI-TOD tiny buckets, VisDrone AP/AR500)
#   4. benchmark yolo-ema benchmark                 (reuses seed 0 from step 2, trains the other SEEDS, report.md)
#   5. export    yolo export                        (EMA model, EXPORT_FORMAT)
# Re-running continues where it stopped (prepare is idempotent, finished trainings are skipped, benchmark resumes).
#
# GPU settings (defaults): imgsz 640, 200 epochs, batch 16, SGD/auto optimizer of Ultralytics, 3 seeds, device 0.
# One 24 GB GPU holds batch 16 for yolov8s and yolov8s-p2 at 640; each model x seed takes hours (an estimate, not measured here).
#
# Environment (defaults in brackets):
#   SRC        raw VisDrone folder with VisDrone2019-DET-{train,val,test-dev}[.zip]  [datasets/VisDrone-src]
#   DATA_DIR   prepared output [datasets/visdrone]       OUT      results [runs/visdrone_paper]
#   MODELS     ["yolov8s yolov8s-p2"]   SEEDS ["0 1 2"]   EPOCHS [200]   IMGSZ [640]   BATCH [16]
#   DEVICE     [0]   WORKERS [8]   EXPORT_FORMAT [onnx]   PRETRAINED  weights to start both models from [none]
#   DATA       visdrone | synthetic (the embedded set, for checking the recipe) [visdrone]
# Smoke mode (`--smoke` or SMOKE=1): DATA=synthetic, MODELS=yolov8n, SEEDS=0, EPOCHS=1, IMGSZ=64, BATCH=4,
# DEVICE=cpu, WORKERS=0, tiny synthetic set; checks every step end to end in a few minutes on a CPU.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ "${1:-}" == "--smoke" ]] && SMOKE=1
if [[ "${SMOKE:-0}" == 1 ]]; then
  : "${DATA:=synthetic}" "${MODELS:=yolov8n}" "${SEEDS:=0}" "${EPOCHS:=1}" "${IMGSZ:=64}" "${BATCH:=4}"
  : "${DEVICE:=cpu}" "${WORKERS:=0}" "${OUT:=runs/visdrone_paper_smoke}" "${EXPORT_FORMAT:=torchscript}"
  : "${SYN_IMAGES:=12}" "${SYN_SIZE:=96}" "${LATENCY_RUNS:=2}"
fi
: "${DATA:=visdrone}" "${SRC:=datasets/VisDrone-src}" "${OUT:=runs/visdrone_paper}"
: "${MODELS:=yolov8s yolov8s-p2}" "${SEEDS:=0 1 2}" "${EPOCHS:=200}" "${IMGSZ:=640}" "${BATCH:=16}"
: "${DEVICE:=0}" "${WORKERS:=8}" "${EXPORT_FORMAT:=onnx}" "${PRETRAINED:=}" "${LATENCY_RUNS:=30}"
: "${SYN_IMAGES:=100}" "${SYN_SIZE:=640}"
export YOLO_OFFLINE="${YOLO_OFFLINE:-1}"
step() { printf '\n=== %s ===\n' "$*"; }

# 1. prepare
if [[ "$DATA" == synthetic ]]; then
  : "${DATA_DIR:=$OUT/data/visdrone-synthetic}"
  step "prepare: synthetic VisDrone-format set ($SYN_IMAGES images, ${SYN_SIZE}px) -> $DATA_DIR"
  yolo-ema prepare synthetic --out "$OUT/data/synthetic-src" --images "$SYN_IMAGES" --size "$SYN_SIZE" --no-progress
  yolo-ema prepare visdrone --source "$OUT/data/synthetic-src" --out "$DATA_DIR" --no-progress
elif [[ "$DATA" == visdrone ]]; then
  : "${DATA_DIR:=datasets/visdrone}"
  if [[ -f "$DATA_DIR/report.json" && ! -d "$SRC" ]]; then
    step "prepare: using the prepared $DATA_DIR (no SRC at $SRC)"
  else
    [[ -d "$SRC" ]] || { echo "visdrone_paper.sh: SRC=$SRC does not exist (raw VisDrone folder or zips)" >&2; exit 2; }
    step "prepare: VisDrone from $SRC -> $DATA_DIR"
    yolo-ema prepare visdrone --source "$SRC" --out "$DATA_DIR" --no-progress
  fi
else
  echo "visdrone_paper.sh: DATA must be visdrone or synthetic, got '$DATA'" >&2
  exit 2
fi

pre=()
[[ -n "$PRETRAINED" ]] && pre=(pretrained="$PRETRAINED")
first_seed="${SEEDS%% *}"
for m in $MODELS; do
  bench="$OUT/bench-$m"
  base_dir="$bench/runs/$m-seed$first_seed"
  ema_dir="$bench/runs/$m-ema-seed$first_seed"
  # 2. train (seed $first_seed; the benchmark below reuses these runs and trains the remaining seeds)
  for pair in "$m.yaml:$base_dir" "$REPO/cfg/$m-ema.yaml:$ema_dir"; do
    cfg="${pair%%:*}" dir="${pair#*:}"
    if [[ -f "$dir/weights/best.pt" ]]; then
      step "train: $(basename "$dir") already trained"
      continue
    fi
    step "train: $cfg seed $first_seed -> $dir"
    rm -rf "$dir"
    yolo train model="$cfg" data="$DATA_DIR/data.yaml" epochs="$EPOCHS" imgsz="$IMGSZ" batch="$BATCH" \
      device="$DEVICE" workers="$WORKERS" seed="$first_seed" deterministic=True val=True plots=False \
      project="$(mkdir -p "$bench/runs" && cd "$bench/runs" && pwd)" name="$(basename "$dir")" exist_ok=True "${pre[@]}"
  done
  # 3. evaluate (VisDrone protocol: ignored regions, 500 detections per image)
  step "eval: $m vs $m-ema on $DATA_DIR val"
  yolo-ema eval --model "$base_dir/weights/best.pt" "$ema_dir/weights/best.pt" --data "$DATA_DIR" --split val \
    --imgsz "$IMGSZ" --device "$DEVICE" --protocol visdrone --out "$OUT/eval-$m" --no-per-class
  # 4. benchmark over SEEDS (report.md, report.json, plot.png in $bench)
  step "benchmark: $m vs $m-ema, seeds $SEEDS -> $bench"
  bargs=(--data "$DATA_DIR" --model "$m" --seeds $SEEDS --epochs "$EPOCHS" --imgsz "$IMGSZ" --batch "$BATCH"
    --device "$DEVICE" --workers "$WORKERS" --out "$bench" --val --latency-runs "$LATENCY_RUNS")
  [[ -n "$PRETRAINED" ]] && bargs+=(--pretrained "$PRETRAINED")
  yolo-ema benchmark "${bargs[@]}" > "$bench.log"
  echo "report: $bench/report.md"
  # 5. export the EMA model
  step "export: $ema_dir/weights/best.pt -> $EXPORT_FORMAT"
  yolo export model="$ema_dir/weights/best.pt" format="$EXPORT_FORMAT" imgsz="$IMGSZ" device="$DEVICE"
done
step "done: reports in $OUT/bench-*/report.md"
