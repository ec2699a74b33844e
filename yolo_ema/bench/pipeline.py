"""The benchmark from start to report: data -> (pre-train) -> train and evaluate every model per seed -> paired
bootstrap -> cost -> attention picture -> report.

Everything lands in OUT (default ``runs/benchmark``): ``runs/<label>-seed<k>/`` (training, ``done.json``, cached
evaluation, detections and bootstrap scores), ``logs/<run>.log``, ``report.md``, ``report.json``, ``plot.png``,
``attention.png``. Re-running the same command resumes: finished runs, evaluations and scores are reused, an
interrupted training is resumed from its ``last.pt``.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from yolo_ema.bench import arms, bootstrap, data, evaluation, lock, report, runner
from yolo_ema.bench import jobs as jobs_
from yolo_ema.bench.jobs import default_jobs
from yolo_ema.bench.presets import DEFAULT
from yolo_ema.bench.records import Comparison, Description, Picture, Results, ScoredRun, Statistics, TrainedRun
from yolo_ema.bench.runner import BenchmarkError, Run, Settings

SYNTHETIC_NOTE = (
    "A CPU-sized run on the embedded synthetic set ({train} training images): {start} and every model is fine-tuned "
    "from it for {epochs} epochs per seed (an arm's added layers start fresh, the others take the pre-trained "
    "weights). The seeds vary the fine-tuning, not the shared start. It answers the question for this small data and "
    "schedule only; judge EMA for your data with your data (`--data PATH`) or the paper recipe in scripts/ on a GPU."
)
REAL_NOTE = (
    "With {n} seed(s) per model. The verdicts' intervals cover training noise (the seeds) and the validation images; "
    "with one seed (or given weights) they cover the images only and speak of those weights, not of the method."
)


@dataclass
class Config:
    """What to benchmark and how; see ``yolo-ema benchmark --help`` for each field. The defaults are the synthetic
    preset's (:mod:`yolo_ema.bench.presets`)."""

    data: str = "synthetic"
    model: str = "yolov8n"
    arms: list = field(default_factory=lambda: list(DEFAULT["arms"]))
    seeds: list = field(default_factory=lambda: list(DEFAULT["seeds"]))
    epochs: int = DEFAULT["epochs"]
    pretrain_epochs: int = DEFAULT["pretrain_epochs"]
    imgsz: int = DEFAULT["imgsz"]
    batch: int = DEFAULT["batch"]
    device: str = DEFAULT["device"]
    workers: int = DEFAULT["workers"]
    jobs: int | None = None
    scheduler: str | None = None  # Dask scheduler address: runs go to that cluster instead of the local pool
    out: Path = Path("runs/benchmark")
    weights: list | None = None
    pretrained: str | None = None
    data_dir: Path | None = None
    source: Path | None = None
    cache: Path | None = None
    split: str = "val"
    protocol: str = "auto"
    val: bool = DEFAULT["val"]
    synthetic_images: int = DEFAULT["synthetic_images"]
    synthetic_size: int = DEFAULT["synthetic_size"]
    latency_sizes: list | None = None  # None: imgsz and 640
    latency_runs: int = 30
    latency_warmup: int = 5
    threads: int | None = None  # torch CPU threads for latency (None: all cores); training uses Ultralytics' choice
    resamples: int = DEFAULT["resamples"]
    extra: dict = field(default_factory=lambda: dict(DEFAULT["extra"]))  # Ultralytics train arguments of each run
    pretrain_extra: dict = field(default_factory=lambda: dict(DEFAULT["pretrain_extra"]))  # ... of the pre-training
    command: str | None = None


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


def plan(cfg: Config, models: dict) -> list[Run]:
    """Training runs, paired by seed: for seed 0 the baseline then each arm, then seed 1, ... (the control arm
    trains with its own disjoint seed, :func:`yolo_ema.bench.arms.run_seed`)."""
    roles = ["baseline"] + ["arm"] * (len(models) - 1)
    return [
        Run(role, label, c, arms.run_seed(label, s))
        for s in cfg.seeds
        for role, (label, c) in zip(roles, models.items())
    ]


def _given(cfg: Config) -> list[TrainedRun]:
    """Runs for ``--weights BASE.pt ARM.pt ...`` (no training): the first is the baseline."""
    paths = [Path(w) for w in cfg.weights]
    for p in paths:
        if not p.is_file():
            raise BenchmarkError(f"--weights: {p} does not exist")
    names = [p.parent.parent.name if p.parent.name == "weights" else p.stem for p in paths]
    if len(set(names)) != len(names):
        names = [f"{i}-{n}" for i, n in enumerate(names)]
    roles = ["baseline"] + ["arm"] * (len(paths) - 1)
    return [TrainedRun(n, r, n, str(p), 0, str(p.resolve()), "given") for r, n, p in zip(roles, names, paths)]


def set_threads(threads: int | None) -> int:
    """Use ``threads`` torch CPU threads (default: every core). Ultralytics trains with its own choice (cores - 1)."""
    import torch

    n = int(threads or os.cpu_count() or 1)
    if n < 1:
        raise BenchmarkError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(n)
    return n


def machine(device: str, jobs: int, threads: int, scheduler: str | None = None) -> str:
    """Where it ran: this machine (and how training was spread), or the Dask cluster that trained the runs."""
    import torch

    cpu = platform.processor() or platform.machine()
    n = os.cpu_count() or 1
    if scheduler:
        text = f"training on the Dask cluster at {scheduler} (each run's worker in its record); this driver: "
        text += f"{platform.system()} {cpu}, {n} CPU cores (latency {threads} threads)"
    else:
        text = f"{platform.system()} {cpu}, {n} CPU cores (training: {jobs} run(s) at a time, "
        text += f"{max(1, min(8, n - 1))} torch thread(s) each, Ultralytics' choice; latency {threads})"
    text += f", torch {torch.__version__}"
    if str(device) != "cpu" and torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    try:
        import ultralytics

        text += f", ultralytics {ultralytics.__version__}"
    except ImportError:  # pragma: no cover
        pass
    return text + f", device {device}"


def pretrain(cfg: Config, base_cfg: str, data_yaml: Path, out: Path, log: Callable, train_fn=None) -> str:
    """Train the baseline once from scratch (seed 0) and return its weights: the arms' common start.

    On a CPU it trains with Ultralytics' thread count (cores - 1): two threads on two cores were measured to slow
    down badly as soon as anything else runs.
    """
    settings = Settings(cfg.pretrain_epochs, cfg.imgsz, cfg.batch, str(cfg.device), cfg.workers, cfg.pretrained,
                        cfg.val, dict(cfg.pretrain_extra))  # fmt: skip
    r = Run("pretrain", f"{cfg.model}-pretrain", base_cfg, 0)
    log(f"{r.name}: pre-training the baseline ({cfg.pretrain_epochs} epochs, imgsz {cfg.imgsz}, device {cfg.device})")
    t = time.perf_counter()
    rec = runner.train_run(r, data_yaml, settings, out, train_fn=train_fn, log=log)
    log(f"{r.name}: {rec.status} in {time.perf_counter() - t:.0f} s -> {rec.weights}")
    return rec.weights


def run(cfg: Config, train_fn: Callable | None = None, log: Callable | None = None) -> dict:
    """Run the whole benchmark; return {"report": paths, "results": :class:`Results`}. One benchmark at a time per OUT (a
    lock on ``OUT/.lock``; a second one is an error naming the folder and the holder)."""
    with lock.hold(Path(cfg.out).resolve()):
        return _run(cfg, train_fn, log)


def _run(cfg: Config, train_fn: Callable | None = None, log: Callable | None = None) -> dict:
    """The stages in order: data -> training (or given weights) and evaluation -> statistics -> cost -> pictures ->
    report."""
    log = log or Log()
    t0 = time.perf_counter()
    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if cfg.weights is not None and len(cfg.weights) < 2:
        raise BenchmarkError(
            f"--weights takes the baseline and at least one arm (BASE.pt ARM.pt ...), got {cfg.weights}"
        )
    arms.check_seeds(cfg.seeds, [] if cfg.weights else cfg.arms)
    models = arms.resolve(cfg.model, cfg.arms) if not cfg.weights else None
    prepared = resolve_data(cfg, log)
    jobs = cfg.jobs or default_jobs(cfg.device)
    if cfg.weights:
        runs, start = given_records(cfg, prepared, log), None
    else:
        runs, start = trained_records(cfg, models, prepared, out, jobs, log, train_fn)
    statistics = paired_stats(runs, cfg.resamples)
    threads = set_threads(cfg.threads)  # after training: Ultralytics' select_device resets CPU threads to cores - 1
    costs = measure_cost(cfg, runs, log)
    picture = attention_picture(runs, prepared, cfg, out, log)
    wall = time.perf_counter() - t0
    where = machine(cfg.device, jobs, threads, cfg.scheduler)
    results = Results(describe(cfg, runs, prepared, start, where, wall), runs, statistics, costs, picture,
                      _notes(cfg, _train_images(prepared)))  # fmt: skip
    paths = report.write(results.document(), out)
    log(f"report: {paths['md']}, {paths['json']}, {paths['plot']} ({wall / 60:.1f} min)")
    return {"report": paths, "results": results}


def given_records(cfg: Config, prepared: Path, log: Callable) -> list[ScoredRun]:
    """``--weights``: each given model evaluated and scored on the bootstrap draws (no training; nothing cached, the
    detections stay in memory)."""
    ev = {"data": prepared, "split": cfg.split, "imgsz": cfg.imgsz, "protocol": cfg.protocol}
    scored = []
    for given in _given(cfg):
        log(f"{given.run}: given weights {given.weights}")
        metrics = evaluation.evaluate_run(given, folder=None, log=log, device=cfg.device, **ev)
        scores = evaluation.bootstrap_scores(given.run, metrics, None, **ev, resamples=cfg.resamples, log=log)
        scored.append(ScoredRun(given, {k: v for k, v in metrics.items() if k != "detections"}, scores))
    return scored


def trained_records(cfg: Config, models: dict, prepared: Path, out: Path, jobs: int, log: Callable,
                    train_fn=None) -> tuple[list[ScoredRun], str | None]:  # fmt: skip
    """(scored runs, start): every model x seed trained (after the shared pre-training, if any), evaluated and scored,
    through the local pool or the Dask cluster; ``start`` is the weights every run started from."""
    start = cfg.pretrained
    if cfg.pretrain_epochs:
        start = pretrain(cfg, models[cfg.model], prepared / "data.yaml", out, log, train_fn)
    settings = Settings(cfg.epochs, cfg.imgsz, cfg.batch, str(cfg.device), cfg.workers, start, cfg.val,
                        dict(cfg.extra))  # fmt: skip
    ev = {"data": prepared, "split": cfg.split, "imgsz": cfg.imgsz, "protocol": cfg.protocol, "device": cfg.device,
          "resamples": cfg.resamples}  # fmt: skip
    runs, data_yaml = plan(cfg, models), prepared / "data.yaml"
    if cfg.scheduler:
        if train_fn is not None:
            raise BenchmarkError("a custom train_fn runs in this process only; it cannot go to --scheduler")
        from yolo_ema.bench import cluster

        return cluster.run_all(runs, data_yaml, settings, out, ev, log, cfg.scheduler), start
    return jobs_.run_all(runs, data_yaml, settings, out, ev, jobs, log, train_fn), start


def measure_cost(cfg: Config, runs: list[ScoredRun], log: Callable) -> dict:
    """{label: params, FLOPs and latency} of each model's first-seed weights (the control is the baseline's own
    model, not measured again)."""
    from yolo_ema.bench import cost

    first = {}
    for r in (s.trained for s in runs):
        if not arms.is_control(r.label):
            first.setdefault(r.label, r.weights)
    sizes = list(dict.fromkeys(cfg.latency_sizes or [cfg.imgsz, 640]))
    return cost.measure(first, sizes, runs=cfg.latency_runs, warmup=cfg.latency_warmup, device=cfg.device,
                        progress=log)  # fmt: skip


def describe(cfg: Config, runs: list[ScoredRun], prepared: Path, start, machine_text: str, wall: float) -> Description:
    """What was compared, on what, how trained, where and how long."""
    trained = [s.trained for s in runs]
    labels = list(dict.fromkeys(r.label for r in trained))
    if cfg.weights:
        training = "not trained here: given weights"
    else:
        origin = (
            f"fine-tuned from the baseline pre-trained here for {cfg.pretrain_epochs} epochs (seed 0)"
            if cfg.pretrain_epochs
            else (f"pretrained {start}" if start else "from scratch")
        )
        training = (
            f"{cfg.epochs} epochs, imgsz {cfg.imgsz}, batch {cfg.batch}, deterministic, same seed and settings for "
            f"every model; {origin}; evaluated weights: best.pt"
            + ("" if cfg.val else " (validation only after the last epoch, so best.pt is the last epoch)")
        )
    return Description(
        data=cfg.data,
        data_dir=str(prepared),
        split=cfg.split,
        protocol=next((s.metrics.get("protocol") for s in runs), cfg.protocol),
        baseline=labels[0],
        arms=labels[1:],
        configs={r.label: r.cfg for r in trained},
        seeds=[0] if cfg.weights else list(cfg.seeds),
        training=training,
        pretrain_epochs=cfg.pretrain_epochs if not cfg.weights else 0,
        train_images=_train_images(prepared),
        machine=machine_text,
        wall_seconds=round(wall, 1),
        wall_time=f"{wall / 60:.1f} min for this invocation (finished runs reused: "
        f"{sum(r.status == 'skipped' for r in trained)})",
        command=cfg.command,
    )


def paired_stats(runs: list[ScoredRun], resamples: int) -> Statistics:
    """Each arm minus the baseline, paired by seed on the shared bootstrap draws: a :class:`Comparison` per arm."""
    base = [s for s in runs if s.trained.role == "baseline"]
    one = len({s.trained.seed for s in base}) < 2
    method = (bootstrap.METHOD_ONE if one else bootstrap.METHOD).format(b=resamples)
    comparisons = {}
    for label in dict.fromkeys(s.trained.label for s in runs if s.trained.role != "baseline"):
        pairs, seeds = [], []
        for b in base:
            seed = arms.run_seed(label, b.trained.seed)
            arm = next((s for s in runs if s.trained.label == label and s.trained.seed == seed), None)
            if arm is not None:
                pairs.append((b.scores, arm.scores))
                seeds.append(b.trained.seed)
        comparisons[label] = Comparison(seeds=seeds, **bootstrap.paired(pairs))
    return Statistics(method, resamples, comparisons)


def attention_picture(runs: list[ScoredRun], prepared: Path, cfg: Config, out: Path, log: Callable) -> Picture | None:
    """attention.png: baseline and the first EMA arm's detections and EMA maps on a few validation images."""
    from yolo_ema.bench import attention
    from yolo_ema.bench.cost import ema_layers

    trained = [s.trained for s in runs]
    base = next(r for r in trained if r.role == "baseline")
    for r in trained:
        if r.role != "baseline" and r.seed == base.seed and ema_layers(r.weights):
            images = sorted((prepared / "images" / cfg.split).glob("*"))[:3]
            if not images:
                return None
            log(f"picture: EMA attention maps of {r.label} on {len(images)} {cfg.split} images")
            path = attention.picture(base.weights, r.weights, images, out / "attention.png", cfg.imgsz,
                                     labels=(base.label, r.label))  # fmt: skip
            return Picture(path.name, r.label, [p.name for p in images])
    return None


def _train_images(prepared: Path):
    rep = evaluation.read_json(prepared / "report.json") or {}
    return (rep.get("splits", {}).get("train") or {}).get("images")


def _notes(cfg: Config, n_train) -> list[str]:
    if cfg.data == "synthetic" and not cfg.weights:
        start = f"the baseline {cfg.model} is pre-trained once from scratch ({cfg.pretrain_epochs} epochs)"
        if not cfg.pretrain_epochs:
            start = f"the start is {cfg.pretrained}" if cfg.pretrained else "every model starts from scratch"
        return [SYNTHETIC_NOTE.format(start=start, epochs=cfg.epochs, train=n_train)]
    return [REAL_NOTE.format(n=len(cfg.seeds) if not cfg.weights else 1)]
