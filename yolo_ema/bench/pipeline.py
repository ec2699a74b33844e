"""The benchmark from start to report: data -> train both models per seed -> evaluate -> cost -> report.

Everything lands in OUT (default ``runs/benchmark``): ``runs/<label>-seed<k>/`` (training, ``done.json``, cached
evaluations), ``report.md``, ``report.json``, ``plot.png``. Re-running the same command resumes: finished runs and
evaluations are reused, an interrupted training is resumed.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from yolo_ema.bench import atomic, data, report, runner
from yolo_ema.bench.runner import BenchmarkError, Run, Settings

SYNTHETIC_NOTE = (
    "This is a CPU run on the embedded synthetic set: {model} and {ema} trained from scratch for {epochs} epochs on "
    "{train} small images. It shows that the whole pipeline works (data generation and VisDrone-path preparation, "
    "same-seed training, COCO/AI-TOD/VisDrone evaluation, params/FLOPs/latency, seed-spread verdicts). The models are "
    "nowhere near converged, so the accuracy numbers say nothing about whether EMA helps; only the cost section "
    "(params, FLOPs, and latency on this machine) carries over to real use. Judge EMA's accuracy with the real-data "
    "recipes in scripts/ on a GPU."
)
REAL_NOTE = (
    "Differences marked inside the seed spread are not evidence either way; with {n} seed(s) only a difference "
    "outside the spread on every seed is a result."
)


@dataclass
class Config:
    """What to benchmark and how; see ``yolo-ema benchmark --help`` for each field."""

    data: str = "synthetic"
    model: str = "yolov8n"
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    epochs: int = 5
    imgsz: int = 256
    batch: int = 8
    device: str = "cpu"
    workers: int = 0
    out: Path = Path("runs/benchmark")
    weights: list | None = None
    pretrained: str | None = None
    data_dir: Path | None = None
    source: Path | None = None
    cache: Path | None = None
    split: str = "val"
    protocol: str = "auto"
    val: bool = False
    synthetic_images: int = 80
    synthetic_size: int = 256
    latency_runs: int = 30
    latency_warmup: int = 5
    threads: int | None = None  # torch CPU threads for latency (None: all cores); training uses Ultralytics' choice
    extra: dict = field(default_factory=dict)
    command: str | None = None


def cfg_dir() -> Path:
    """The shipped ``cfg/`` folder (inside the package, else next to it in a checkout)."""
    import yolo_ema

    pkg = Path(yolo_ema.__file__).resolve().parent
    for p in (pkg / "cfg", pkg.parent / "cfg"):
        if p.is_dir():
            return p
    raise BenchmarkError(f"cfg/ folder with the EMA model YAMLs not found in {pkg} or {pkg.parent}")


def ema_cfg(model: str) -> str:
    """``cfg/<model>-ema.yaml`` for a baseline name (scale letter resolved by Ultralytics, as in ``yolo train``)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", model) or model.endswith((".yaml", ".pt")):
        raise BenchmarkError(f"--model {model!r}: give a baseline name such as yolov8n, yolov8s-p2 or yolo11s")
    folder = cfg_dir()
    path = folder / f"{model}-ema.yaml"
    unscaled = folder / (re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", f"{model}-ema") + ".yaml")
    if not path.is_file() and not unscaled.is_file():
        have = ", ".join(sorted(p.stem for p in folder.glob("*-ema.yaml")))
        raise BenchmarkError(
            f"--model {model}: no EMA variant {path.name} (nor {unscaled.name}) in {folder}; have {have}"
        )
    return str(path)


class Log:
    """Progress lines with the elapsed benchmark time."""

    def __init__(self, stream=None):
        self.t0 = time.perf_counter()
        self.stream = stream or sys.stdout

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def __call__(self, msg: str) -> None:
        m, s = divmod(int(self.elapsed()), 60)
        print(f"[benchmark {m:02d}:{s:02d}] {msg}", file=self.stream, flush=True)


def resolve_data(cfg: Config, log: Callable) -> Path:
    out = Path(cfg.out).resolve()
    if cfg.data == "synthetic":
        return data.synthetic(Path(cfg.cache or out / "data"), cfg.synthetic_images, cfg.synthetic_size, 0, log)
    if cfg.data in ("visdrone", "coco"):
        return data.catalogue_dataset(cfg.data, Path(cfg.data_dir or Path("datasets") / cfg.data), cfg.source, log)
    return data.folder(Path(cfg.data), cfg.split)


def plan(cfg: Config) -> list[Run]:
    """Training runs, paired by seed: baseline then EMA for seed 0, then seed 1, ..."""
    base, ema = f"{cfg.model}.yaml", ema_cfg(cfg.model)
    return [Run(role, label, c, s) for s in cfg.seeds for role, label, c in
            (("baseline", cfg.model, base), ("ema", f"{cfg.model}-ema", ema))]  # fmt: skip


def _given(cfg: Config) -> list[dict]:
    """Records for ``--weights BASE.pt EMA.pt`` (no training)."""
    paths = [Path(w) for w in cfg.weights]
    for p in paths:
        if not p.is_file():
            raise BenchmarkError(f"--weights: {p} does not exist")
    names = [p.stem for p in paths]
    if names[0] == names[1]:
        names = [p.parent.parent.name if p.parent.name == "weights" else p.parent.name for p in paths]
    if names[0] == names[1]:
        names = [f"baseline-{names[0]}", f"ema-{names[1]}"]
    return [
        {"run": n, "role": r, "label": n, "cfg": str(p), "seed": None, "weights": str(p.resolve())}
        for r, n, p in zip(("baseline", "ema"), names, paths)
    ]


def _evaluate(rec: dict, prepared: Path, cfg: Config, folder: Path | None, log: Callable) -> dict:
    """``yolo_ema.eval.evaluate`` of a run's weights, cached in its run folder (keyed on weights and settings)."""
    from yolo_ema.eval import evaluate

    w = Path(rec["weights"])
    key = {"weights": str(w), "mtime": w.stat().st_mtime, "split": cfg.split, "imgsz": cfg.imgsz}
    key.update({"protocol": cfg.protocol, "data": str(prepared)})
    cache = folder / f"eval-{cfg.split}-{cfg.imgsz}.json" if folder else None
    if cache is not None:
        hit = atomic.read_json(cache)
        if hit and hit.get("key") == key:
            log(f"{rec['run']}: evaluation cached ({cache.name})")
            return hit["result"]
    log(f"{rec['run']}: evaluating {w.name} on {cfg.split} at imgsz {cfg.imgsz}")
    res = evaluate(str(w), prepared, split=cfg.split, imgsz=cfg.imgsz, protocol=cfg.protocol, device=cfg.device)
    res.pop("detections", None)
    if cache is not None:
        atomic.write_json(cache, {"key": key, "result": res})
    return res


def set_threads(threads: int | None) -> int:
    """Use ``threads`` torch CPU threads (default: every core). Ultralytics trains with its own choice (cores - 1)."""
    import torch

    n = int(threads or os.cpu_count() or 1)
    if n < 1:
        raise BenchmarkError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(n)
    return n


def machine(device: str) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    n = os.cpu_count() or 1
    text = f"{platform.system()} {cpu}, {n} CPU cores (CPU threads: training {max(1, min(8, n - 1))}, "
    text += f"Ultralytics' choice; latency {torch.get_num_threads()})"
    text += f", torch {torch.__version__}"
    if str(device) != "cpu" and torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    try:
        import ultralytics

        text += f", ultralytics {ultralytics.__version__}"
    except ImportError:  # pragma: no cover
        pass
    return text + f", device {device}"


def run(cfg: Config, train_fn: Callable | None = None, log: Callable | None = None) -> dict:
    """Run the whole benchmark; return {"report": paths, "results": results}."""
    log = log or Log()
    t0, cpu0 = time.perf_counter(), time.process_time()
    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if cfg.weights is not None and len(cfg.weights) != 2:
        raise BenchmarkError(f"--weights takes exactly two files (BASE.pt EMA.pt), got {len(cfg.weights)}")
    prepared = resolve_data(cfg, log)
    settings = Settings(cfg.epochs, cfg.imgsz, cfg.batch, str(cfg.device), cfg.workers, cfg.pretrained, cfg.val,
                        dict(cfg.extra))  # fmt: skip
    records = []
    if cfg.weights:
        for rec in _given(cfg):
            log(f"{rec['run']}: given weights {rec['weights']}; Ultralytics val")
            rec["val"] = runner.ultralytics_val(rec["weights"], prepared / "data.yaml", settings)
            records.append((rec, None))
        base_cfg, ema_cfg_ = (r["cfg"] for r, _ in records)
    else:
        runs = plan(cfg)
        base_cfg, ema_cfg_ = runs[0].cfg, runs[1].cfg
        for i, r in enumerate(runs, 1):
            log(f"[{i}/{len(runs)}] {r.name}: training ({cfg.epochs} epochs, imgsz {cfg.imgsz}, device {cfg.device})")
            t = time.perf_counter()
            rec = runner.train_run(r, prepared / "data.yaml", settings, out, train_fn=train_fn, log=log)
            if rec["status"] != "skipped":
                log(f"[{i}/{len(runs)}] {r.name}: {rec['status']} in {time.perf_counter() - t:.0f} s")
            records.append((rec, runner.run_dir(out, r)))
    results_runs = []
    for rec, folder in records:
        results_runs.append({**rec, "eval": _evaluate(rec, prepared, cfg, folder, log)})
    from yolo_ema.bench import cost

    set_threads(cfg.threads)  # after training: Ultralytics' select_device resets CPU threads to cores - 1
    first = {r["role"]: r for r in results_runs[::-1]}  # the first seed's weights of each role
    models = {first[role]["label"]: first[role]["weights"] for role in ("baseline", "ema")}
    costs = cost.measure(models, cfg.imgsz, runs=cfg.latency_runs, warmup=cfg.latency_warmup, device=cfg.device,
                         progress=log)  # fmt: skip
    wall = time.perf_counter() - t0
    n_train = _train_images(prepared)
    training = (
        f"{cfg.epochs} epochs, imgsz {cfg.imgsz}, batch {cfg.batch}, deterministic, same seed and settings for both; "
        f"{'pretrained ' + str(cfg.pretrained) if cfg.pretrained else 'from scratch'}; evaluated weights: best.pt"
        + ("" if cfg.val else " (validation only after the last epoch, so best.pt is the last epoch)")
    )
    if cfg.weights:
        training = "not trained here: given weights"
    results = {
        "benchmark": {
            "data": cfg.data,
            "data_dir": str(prepared),
            "split": cfg.split,
            "protocol": next((r["eval"].get("protocol") for r in results_runs), cfg.protocol),
            "baseline": first["baseline"]["label"],
            "ema": first["ema"]["label"],
            "baseline_cfg": base_cfg,
            "ema_cfg": ema_cfg_,
            "seeds": [] if cfg.weights else list(cfg.seeds),
            "settings": settings.as_dict(),
            "training": training,
            "train_images": n_train,
            "machine": machine(cfg.device),
            "wall_seconds": round(wall, 1),
            "cpu_seconds_main_process": round(time.process_time() - cpu0, 1),
            "wall_time": f"{wall / 60:.1f} min for this invocation (finished runs reused: "
            f"{sum(r.get('status') == 'skipped' for r in results_runs)})",
            "command": cfg.command,
        },
        "runs": results_runs,
        "cost": costs,
        "notes": _notes(cfg, n_train),
    }
    paths = report.write(results, out)
    log(f"report: {paths['md']}, {paths['json']}, {paths['plot']} ({wall / 60:.1f} min)")
    return {"report": paths, "results": results}


def _train_images(prepared: Path):
    rep = atomic.read_json(prepared / "report.json") or {}
    return (rep.get("splits", {}).get("train") or {}).get("images")


def _notes(cfg: Config, n_train) -> list[str]:
    if cfg.data == "synthetic":
        ema = f"{cfg.model}-ema"
        return [SYNTHETIC_NOTE.format(model=cfg.model, ema=ema, epochs=cfg.epochs, train=n_train or "a few")]
    return [REAL_NOTE.format(n=len(cfg.seeds) if not cfg.weights else 1)]
